"""The container test's stand-in for MinIO, whose image cannot be pulled where the test runs:
moto's S3 server on port 9000, keeping its buckets on the `minio-data` volume across restarts
as MinIO does. moto holds everything in memory, so the buckets are pickled to the volume when
the container is stopped (SIGTERM: `docker compose stop/restart/down`) and read back at start.
A container that is killed loses what it stored since it started; the test never kills it.

    python s3_standin.py /data
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
from pathlib import Path

from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer


def main(data_dir: Path) -> None:
    snapshot = data_dir / "buckets.pickle"
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    if snapshot.exists():
        backend.buckets.update(pickle.loads(snapshot.read_bytes()))
    print(f"s3 stand-in: {len(backend.buckets)} buckets from {snapshot}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stopped.set())
    server = ThreadedMotoServer(ip_address="0.0.0.0", port=9000, verbose=False)
    server.start()
    stopped.wait()
    server.stop()
    pending = snapshot.with_suffix(".tmp")
    pending.write_bytes(pickle.dumps(backend.buckets))
    os.replace(pending, snapshot)
    print(f"s3 stand-in: {len(backend.buckets)} buckets saved to {snapshot}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
