#!/usr/bin/env python3
"""A stand-in for the service manager's end of the notify protocol: binds
an AF_UNIX datagram socket at argv[1] and appends every datagram it
receives to argv[2], one message per line (newlines inside a message
become '|'), until it has run argv[3] seconds."""
import os
import socket
import sys
import time

path, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
if os.path.exists(path):
    os.unlink(path)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
end = time.monotonic() + seconds
with open(out, "a", buffering=1) as f:
    while time.monotonic() < end:
        sock.settimeout(max(0.05, end - time.monotonic()))
        try:
            msg = sock.recv(4096)
        except socket.timeout:
            continue
        f.write(msg.decode("utf-8", "replace").replace("\n", "|") + "\n")
sock.close()
os.unlink(path)
