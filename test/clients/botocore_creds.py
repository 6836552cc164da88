"""botocore's default credential chain with nothing configured but the IMDS endpoint, as a Python
workload on EC2 would see it. Prints one JSON line of credentials; on failure prints the reason and
botocore's own debug log to stderr and exits 1."""
import io
import json
import logging
import sys

import botocore.session

log = io.StringIO()
handler = logging.StreamHandler(log)
handler.setLevel(logging.DEBUG)
for name in ("botocore.credentials", "botocore.utils"):
    logging.getLogger(name).addHandler(handler)
    logging.getLogger(name).setLevel(logging.DEBUG)

try:
    creds = botocore.session.get_session().get_credentials()
    frozen = creds.get_frozen_credentials() if creds else None
except Exception as e:  # the chain raises for e.g. malformed metadata
    sys.stderr.write(log.getvalue())
    sys.stderr.write(f"error: {type(e).__name__}: {e}\n")
    sys.exit(1)
if frozen is None or not frozen.access_key:
    sys.stderr.write(log.getvalue())
    sys.stderr.write("error: no credentials found\n")
    sys.exit(1)
expiry = getattr(creds, "_expiry_time", None)
print(json.dumps({
    "accessKeyId": frozen.access_key,
    "secretAccessKey": frozen.secret_key,
    "sessionToken": frozen.token,
    "expiration": expiry.isoformat() if expiry else None,
    "method": creds.method,
}))
