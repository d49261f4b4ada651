"""Where a Spark driver's JVM spends its time: attach a Java Flight Recording to every JVM
that runs one of the given driver scripts while something else runs them (a benchmark), then
summarise each recording by what its samples were doing.

    .venv/bin/python -m bench.jfr_watch --out jfr spark_jobs/train_als.py bench/user_script.py &
    .venv/bin/python -m bench.versus_user_script --runs 1 --zip path/to/ml-25m.zip
    kill %1    # the watcher runs until stopped
    .venv/bin/python -m bench.jfr_watch --summarise jfr

Run from the repository's root. A script matches a JVM whose command line contains it. In
local mode the executors are threads of the driver's JVM, so its recording covers the whole
fit. Samples are JFR's execution samples (threads running Java code) and those of its
native-method samples that are in a native BLAS or LAPACK (the rest are threads waiting in
sockets or epoll), classified by their top frames; garbage collection is the sum of the
collections' pauses. The summary starts with the machine it is made on.
"""

from __future__ import annotations

import collections
import re
import subprocess
import time
from pathlib import Path

from bench.harness import argument_parser, machine

# What a sample was doing, by the first of its top frames that matches, in this order.
CATEGORIES = (
    ("normal equations: BLAS dspr per rating", r"dspr|JNIBLAS|lsame|Java8BLAS|VectorBLAS|daxpy|ddot"),
    ("solves: LAPACK dppsv", r"lapack|Dtpsv|Dpptrf|Dppsv|JNILAPACK|CholeskyDecomposition"),
    ("serialisation", r"ObjectOutputStream|ObjectInputStream|kryo|Serializ"),
    ("compression", r"lz4|LZ4|zstd|Snappy|Deflater|Inflater|compress"),
    ("shuffle and block I/O", r"shuffle|storage\.|FileChannel|FileOutputStream|FileInputStream|netty|network"),
    ("building and sorting rating blocks", r"InBlock|TimSort|KeyWrapper|Sorter|OpenHashMap|Growable|ArrayBuilder"),
    ("normal equations: other", r"NormalEquation|computeFactors"),
    ("Spark SQL and planning", r"catalyst|sql\.execution|codegen|janino|asm9"),
    ("Python to JVM (py4j, Arrow)", r"py4j|arrow|ArrowConverters"),
    # Spark's ClosureCleaner reads each closure's bytecode with ASM; jars are opened and verified.
    ("closure cleaning and class loading", r"asm9|ZipFile|JarFile|URLClassPath|ClassLoader|SHA|MessageDigest"),
    ("Hadoop configuration", r"hadoop"),
)


def watch(out: Path, scripts: list[str]) -> None:
    out = out.resolve()  # the JVMs resolve a relative file name against their own working folder
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    while True:
        listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        for line in listing.splitlines()[1:]:
            pid, _, command = line.strip().partition(" ")
            script = next((s for s in scripts if s in command), None)
            if pid in seen or script is None or not command.split()[0].endswith("java"):
                continue
            seen.add(pid)
            name = f"{Path(script).stem}-{time.strftime('%H%M%S')}-{pid}.jfr"
            subprocess.run(
                ["jcmd", pid, "JFR.start", "settings=profile", f"filename={out / name}", "dumponexit=true"],
                capture_output=True,
            )
        time.sleep(0.5)


def summarise(recording: Path) -> None:
    text = subprocess.run(
        ["jfr", "print", "--events", "jdk.ExecutionSample,jdk.NativeMethodSample", str(recording)],
        capture_output=True,
        text=True,
    ).stdout
    counts: collections.Counter[str] = collections.Counter()
    for event in re.split(r"\njdk\.", text)[1:]:
        frames = " ".join(event.partition("stackTrace = [")[2].split("\n")[1:7])
        if event.startswith("NativeMethodSample") and not re.search(r"JNIBLAS|JNILAPACK", frames):
            continue  # a thread waiting in native code (sockets, epoll, a child process): idle
        counts[next((name for name, pattern in CATEGORIES if re.search(pattern, frames)), "other")] += 1
    gc = subprocess.run(
        ["jfr", "print", "--events", "jdk.GarbageCollection", str(recording)], capture_output=True, text=True
    ).stdout
    pauses = sum(_seconds(m) for m in re.findall(r"sumOfPauses = ([\d.]+ \w+)", gc))
    duration = subprocess.run(["jfr", "summary", str(recording)], capture_output=True, text=True).stdout
    total = sum(counts.values()) or 1
    print(f"\n{recording.name}: {total} samples; garbage collection pauses {pauses:.1f} s")
    print(re.search(r"Duration: .*", duration)[0] if re.search(r"Duration: .*", duration) else "")
    for name, n in counts.most_common():
        print(f"- {n / total:6.1%} {name}")


def _seconds(value: str) -> float:
    number, unit = value.split()
    return float(number) * {"s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}.get(unit, 1)


def main() -> None:
    parser = argument_parser("bench.jfr_watch", __doc__)
    parser.add_argument("scripts", nargs="*", help="driver scripts whose JVMs to record")
    parser.add_argument("--out", type=Path, default=Path("/tmp/jfr"))
    parser.add_argument("--summarise", type=Path, help="summarise the recordings in this folder instead")
    args = parser.parse_args()
    if args.summarise:
        print(f"Machine: {machine()}")
        for recording in sorted(args.summarise.glob("*.jfr")):
            summarise(recording)
    else:
        watch(args.out, args.scripts)


if __name__ == "__main__":
    main()
