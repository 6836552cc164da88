"""A full-tree IMDS crawler, stricter than cloud-init's: walks every entry of every listing from
/latest/ down (meta-data, dynamic, user-data, and the security-credentials cloud-init skips), with an
IMDSv2 token, and stops at the first listed entry that does not answer 200, as crawlers do.

Usage: python full_crawl.py [METADATA_URL]
Prints one JSON object {"tree", "fetched", "failed"}; exit 1 when an entry failed.
"""
import json
import re
import sys
import urllib.error
import urllib.request

address = sys.argv[1] if len(sys.argv) > 1 else "http://169.254.169.254"
req = urllib.request.Request(
    address + "/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "300"}
)
token = urllib.request.urlopen(req, timeout=5).read().decode()
fetched = []


class Failed(Exception):
    pass


def get(url):
    r = urllib.request.Request(url, headers={"X-aws-ec2-metadata-token": token})
    try:
        body = urllib.request.urlopen(r, timeout=5).read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        raise Failed(f"{url} answered {e.code}")
    fetched.append(url)
    return body


def walk(url, top=False):
    body = get(url)
    if not url.endswith("/"):
        return body
    out = {}
    for entry in body.split("\n"):
        if entry == "":
            continue
        name = entry.split("=", 1)[0] if re.match(r"^\d+=", entry) else entry
        # The version root lists its directories without the slash ("meta-data", "dynamic").
        child = url + name + ("/" if top and name in ("meta-data", "dynamic") else "")
        out[name] = walk(child)
    return out


try:
    tree = walk(address + "/latest/", top=True)
    failed = None
except Failed as e:
    tree, failed = None, str(e)
print(json.dumps({"tree": tree, "fetched": fetched, "failed": failed}))
sys.exit(0 if failed is None else 1)
