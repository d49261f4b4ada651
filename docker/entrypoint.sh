#!/bin/sh
# The Spark driver runs in this container (client mode): it tells the executors to call it
# back at this container's address on the compose network, unless told otherwise.
set -e
if [ -z "${SPARK_DRIVER_HOST:-}" ]; then
    SPARK_DRIVER_HOST="$(hostname -i | cut -d' ' -f1)"
    export SPARK_DRIVER_HOST
fi
exec "$@"
