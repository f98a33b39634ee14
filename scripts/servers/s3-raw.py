#!/usr/bin/env python3
"""Raw S3 requests for the object-lock tests, made with another client than cairn's, as
someone holding the bucket's credentials would: list versions with their locks, delete a
version, hide an object under a delete marker, overwrite an object.

  s3-raw.py versions BUCKET PREFIX        JSON lines: key, version, latest, marker, until
  s3-raw.py delete-version BUCKET KEY VERSION   exit 3 if the store refuses
  s3-raw.py try-delete-versions BUCKET    "KEY VERSION" lines on stdin; JSON lines out:
                                          key, version, refused
  s3-raw.py delete BUCKET KEY...          deletes without a version (each leaves a marker)
  s3-raw.py overwrite BUCKET KEY          put other bytes under the key

Settings from the environment: S3_ENDPOINT, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
"""
import json, os, sys
import boto3
from botocore.exceptions import ClientError

s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
                  aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
cmd, bucket = sys.argv[1], sys.argv[2]
if cmd == "versions":
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=sys.argv[3])
    for page in pages:
        for v in page.get("Versions", []):
            head = s3.head_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
            until = head.get("ObjectLockRetainUntilDate")
            print(json.dumps({"key": v["Key"], "version": v["VersionId"], "latest": v["IsLatest"],
                              "marker": False, "until": until.timestamp() if until else None}))
        for m in page.get("DeleteMarkers", []):
            print(json.dumps({"key": m["Key"], "version": m["VersionId"], "latest": m["IsLatest"],
                              "marker": True, "until": None}))
elif cmd == "delete-version":
    try:
        s3.delete_object(Bucket=bucket, Key=sys.argv[3], VersionId=sys.argv[4])
    except ClientError as e:
        print(f"refused: {e}", file=sys.stderr)
        sys.exit(3)
elif cmd == "try-delete-versions":
    for line in sys.stdin.read().split("\n"):
        if not line.strip():
            continue
        key, version = line.split()
        try:
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
            refused = False
        except ClientError:
            refused = True
        print(json.dumps({"key": key, "version": version, "refused": refused}))
elif cmd == "delete":
    for key in sys.argv[3:]:
        s3.delete_object(Bucket=bucket, Key=key)
elif cmd == "overwrite":
    s3.put_object(Bucket=bucket, Key=sys.argv[3], Body=b"not what cairn wrote")
else:
    sys.exit(f"unknown command {cmd}")
