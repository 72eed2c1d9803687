#!/usr/bin/env bash
# A throw-away PKI for the TLS distribution tests, made with the openssl CLI:
#
#   test/make_certs.sh DIR HOST
#
# DIR/ca.pem           the CA every good certificate chains to
# DIR/node.{pem,key}   good: CN and SAN name HOST, localhost and 127.0.0.1;
#                      server and client use (one certificate for both roles,
#                      as one ssl_dist_optfile gives both sections)
# DIR/other.{pem,key}  good chain, but its SAN names only "elsewhere.invalid"
#                      (a dialled node whose certificate does not name its host)
# DIR/wrong_ca.pem     an unrelated CA
# DIR/wrong.{pem,key}  HOST's names, signed by wrong_ca
# DIR/expired.{pem,key} HOST's names, signed by ca, valid only in January 2020
# DIR/encrypted.key    node.key under a passphrase
#
# EC P-256 keys (fast to make). Prints nothing on success; exits non-zero
# with openssl's message otherwise.
set -euo pipefail

dir=${1:?usage: make_certs.sh DIR HOST}
host=${2:?usage: make_certs.sh DIR HOST}
mkdir -p "$dir"
cd "$dir"

log=make_certs.log
: > "$log"
run() {
    if ! "$@" >>"$log" 2>&1; then
        echo "make_certs.sh: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

newkey() {
    run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"
}

# One configuration for both CAs: `openssl ca` with a database per CA, the
# leaf's SAN taken from the environment.
cat > ca.cnf <<'EOF'
[ca]
default_ca = unused
[ca_section]
dir = ./$ENV::CA_NAME.db
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
default_md = sha256
default_days = 30
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
commonName = supplied
[req]
distinguished_name = req_dn
prompt = no
[req_dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $ENV::SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

newca() { # name common-name
    newkey "$1"
    mkdir -p "$1.db"
    : > "$1.db/index.txt"
    echo 1000 > "$1.db/serial"
    CA_NAME=$1 SAN=DNS:unused run openssl req -config ca.cnf -new -x509 -key "$1.key" \
        -out "$1.pem" -days 30 -subj "/CN=$2" -extensions ca_ext
}

leaf() { # name ca san [openssl ca date options...]
    local name=$1 ca=$2 san=$3
    shift 3
    newkey "$name"
    CA_NAME=$ca SAN=$san run openssl req -config ca.cnf -new -key "$name.key" \
        -out "$name.csr" -subj "/CN=$host"
    CA_NAME=$ca SAN=$san run openssl ca -config ca.cnf -name ca_section -batch -notext \
        -cert "$ca.pem" -keyfile "$ca.key" -in "$name.csr" -out "$name.pem" \
        -extensions leaf_ext "$@"
}

names="DNS:$host,DNS:localhost,IP:127.0.0.1"
newca ca "lockerd test CA"
newca wrong_ca "lockerd unrelated test CA"
leaf node ca "$names"
leaf other ca "DNS:elsewhere.invalid"
leaf wrong wrong_ca "$names"
leaf expired ca "$names" -startdate 20200101000000Z -enddate 20200201000000Z

run openssl pkey -in node.key -aes256 -passout pass:secret -out encrypted.key
run openssl verify -CAfile ca.pem node.pem other.pem
if openssl verify -CAfile ca.pem expired.pem >/dev/null 2>&1; then
    echo "make_certs.sh: expired.pem verifies; the clock or openssl is off" >&2
    exit 1
fi
