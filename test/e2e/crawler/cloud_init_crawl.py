"""Crawls the instance metadata tree with cloud-init's own EC2 crawler, as its Ec2 data source does on
AWS: an IMDSv2 token from PUT /latest/api/token, then get_instance_metadata (meta-data/, every listed
entry, aborting on the first that fails), get_instance_identity and get_instance_userdata.

cloud-init's sources/helpers/ec2.py is loaded from the unpacked Debian package by file path: importing it
as cloudinit.sources.helpers.ec2 would run cloudinit/sources/__init__.py, which pulls in the distro and
network layers (and their packages) that the crawler does not use.

Usage: python cloud_init_crawl.py CLOUD_INIT_PYTHON_DIR [METADATA_URL]
Prints one JSON object {"meta-data", "dynamic", "user-data", "warnings"}; exit 1 when the crawl of
meta-data/ came back empty (cloud-init's sign that it gave up).
"""
import importlib.util
import json
import logging
import os
import sys

ci_dir = sys.argv[1]
address = sys.argv[2] if len(sys.argv) > 2 else "http://169.254.169.254"
sys.path.insert(0, ci_dir)

from cloudinit import url_helper  # noqa: E402

spec = importlib.util.spec_from_file_location(
    "cloud_init_ec2", os.path.join(ci_dir, "cloudinit/sources/helpers/ec2.py")
)
ec2 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ec2)

warnings = []


class Collect(logging.Handler):
    def emit(self, record):
        if record.levelno >= logging.WARNING:
            warnings.append(record.getMessage())


logging.getLogger().addHandler(Collect())
logging.getLogger().setLevel(logging.WARNING)

token = {"value": None}


def headers_cb(url=""):
    # DataSourceEc2._get_headers: a 6-hour token, fetched again after a 401.
    if "api/token" in url:
        return {"X-aws-ec2-metadata-token-ttl-seconds": "21600"}
    if token["value"] is None:
        r = url_helper.readurl(
            address + "/latest/api/token",
            request_method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
            timeout=5,
        )
        token["value"] = r.contents.decode()
    return {"X-aws-ec2-metadata-token": token["value"]}


def refresh_cb(msg, exception):
    # DataSourceEc2._refresh_stale_aws_token_cb: drop the token on 401, retry everything.
    if isinstance(exception, url_helper.UrlError) and exception.code == 401:
        token["value"] = None
    return True


common = dict(
    api_version="latest",
    metadata_address=address,
    headers_cb=headers_cb,
    headers_redact=["X-aws-ec2-metadata-token"],
    exception_cb=refresh_cb,
    timeout=5,
    retries=1,
)
md = ec2.get_instance_metadata(**common)
identity = ec2.get_instance_identity(**common)
userdata = ec2.get_instance_userdata(
    **{**common, "exception_cb": lambda m, e: ec2.skip_retry_on_codes(ec2.SKIP_USERDATA_CODES, m, e)}
)
if isinstance(userdata, bytes):
    userdata = userdata.decode("utf-8", "replace")
print(json.dumps({"meta-data": md, "dynamic": {"instance-identity": identity}, "user-data": userdata,
                  "warnings": warnings}, default=str))
sys.exit(0 if md else 1)
