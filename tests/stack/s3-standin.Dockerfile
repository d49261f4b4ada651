# The container test's S3 stand-in (s3_standin.py) and download mirror, from the same base
# image as the application's and moto's wheels (make stack-test downloads them into wheels/).
ARG BASE_IMAGE=python:3.11.14-slim-bookworm
FROM ${BASE_IMAGE}
COPY wheels /build/wheels
RUN python3 -m venv /opt/s3 \
 && /opt/s3/bin/pip install --no-cache-dir --no-index --find-links /build/wheels -r /build/wheels/requirements.txt \
 && rm -rf /build
COPY s3_standin.py /opt/s3/
# The volume Docker creates on /data takes this owner: the server runs as nobody.
RUN mkdir /data && chown 65534:65534 /data
USER 65534
