"""``python -m app.kie.simulator --port N``: run the KIE simulator until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse

from aiohttp import web

from app.kie.simulator.server import CALLBACK_MODES, make_app
from app.logs import configure_logging, get_logger

log = get_logger("app.kie.simulator")


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def main(argv: list[str] | None = None) -> None:
    """Run the simulator until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m app.kie.simulator", description="A KIE.ai-compatible server for tests and benchmarks."
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds from create to done")
    parser.add_argument("--callbacks", choices=CALLBACK_MODES, default="deliver")
    parser.add_argument("--fail-rate", type=_rate, default=0.0)
    parser.add_argument("--rate-limit-rate", type=_rate, default=0.0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--webhook-hmac-key", default=None)
    parser.add_argument("--public-base-url", default=None, help="origin for result URLs")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--result-bytes", type=int, default=None, help="serve result files of this size")
    parser.add_argument(
        "--file-rate", type=float, default=None, help="serve result files at this many bytes/s"
    )
    parser.add_argument(
        "--create-code", type=int, default=None, help="answer every create with this KIE code (a refusal)"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)

    configure_logging(args.log_level)
    app = make_app(
        latency=args.latency,
        callbacks=args.callbacks,
        fail_rate=args.fail_rate,
        rate_limit_rate=args.rate_limit_rate,
        api_key=args.api_key,
        webhook_hmac_key=args.webhook_hmac_key,
        public_base_url=args.public_base_url,
        seed=args.seed,
        create_code=args.create_code,
        result_bytes=args.result_bytes,
        file_rate=args.file_rate,
    )
    log.info(
        "kie_sim.starting",
        host=args.host,
        port=args.port,
        latency=args.latency,
        callbacks=args.callbacks,
        fail_rate=args.fail_rate,
        rate_limit_rate=args.rate_limit_rate,
    )
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
