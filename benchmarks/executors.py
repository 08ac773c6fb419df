"""Wall time of the `smoke` plan with the local executor and with Ray on this machine.

    python benchmarks/executors.py [--profile smoke] [--cpus 2]

Both run the profile's whole plan (synthetic sets, every grid point of its grid and ablation
sections) into fresh temporary result folders, so neither reuses the other's records; the
difference is what the engine costs (Ray's start-up, task scheduling, one process per task).
Not a test: run it on an idle machine, since the times are the point.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from mixq_core import executor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--shards", type=int, default=2)
    args = parser.parse_args()
    import ray

    rows = []
    with tempfile.TemporaryDirectory() as local_dir, tempfile.TemporaryDirectory() as ray_dir:
        start = time.perf_counter()
        local = executor.run_locally(args.profile, results_dir=local_dir)
        rows.append(("local", time.perf_counter() - start, local))
        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        started = time.perf_counter() - start
        on_ray = executor.run_on_ray(args.profile, results_dir=ray_dir, shards=args.shards)
        rows.append((f"ray ({args.cpus} CPUs, {args.shards} shards/set)", time.perf_counter() - start, on_ray))
        ray.shutdown()
    print(f"\nProfile {args.profile!r}: {len(executor.profile_plan(args.profile))} grid points\n")
    print("| executor | wall time (s) | experiments done | failures |")
    print("|---|---|---|---|")
    for name, seconds, report in rows:
        print(f"| {name} | {seconds:.1f} | {report.done['experiments']} | {len(report.failures)} |")
    print(f"\nRay start-up alone: {started:.1f} s; overhead of the engine: {rows[1][1] - rows[0][1]:+.1f} s")


if __name__ == "__main__":
    main()
