"""Run the built-in KIE simulator in-process, on a loopback port, for the zero-configuration run."""

from __future__ import annotations

from aiohttp import web

from app.kie.simulator import make_app


async def start_simulator(latency_s: float) -> tuple[web.AppRunner, str]:
    """Start the simulator on 127.0.0.1 (an ephemeral port); return its runner and base URL."""
    runner = web.AppRunner(make_app(latency=latency_s), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"
