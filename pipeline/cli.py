"""`movielens-als [luigi options] [EvaluatedRMSE parameters]`: runs the pipeline exactly like
`luigi --module pipeline EvaluatedRMSE ...`, with luigi's exit codes, then says where
metrics.json is and what the RMSE is."""

from __future__ import annotations

import sys

import luigi.retcodes
from luigi.cmdline_parser import CmdlineParser

from pipeline.store import Store


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    luigi_args = ["--module", "pipeline", "EvaluatedRMSE", *args]
    try:
        luigi.retcodes.run_with_retcodes(luigi_args)
    except SystemExit as finished:
        code = finished.code or 0
    if code == 0 and not {"-h", "--help", "--help-all"} & set(args):
        with CmdlineParser.global_instance(luigi_args) as parser:
            evaluation = parser.get_task_obj()
            store = Store.from_config()
            metrics = store.read_json(evaluation.key)
        print(f"metrics.json: {store.uri(evaluation.key)}")
        print(
            f"RMSE {metrics['rmse']:.4f} on {metrics['n_test']} test ratings "
            f"(global mean predictor: {metrics['global_mean_rmse']:.4f}; "
            f"factors covered {metrics['coverage']:.1%} of the rows)"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
