"""A KIE.ai-compatible server for tests, benchmarks and local runs (``python -m app.kie.simulator``).

The live API is not reachable from our machines, so this simulator is how the gateway meets KIE:
every family's create and status endpoints with their own envelopes, status vocabularies and
callback shapes, business codes inside HTTP 200, and the unpleasant parts on demand.

- ``server``: the application, its create and status handlers, files, credits, download links;
- ``state``: configuration, tasks and counters (all on the application);
- ``statuses``: what each family's status endpoint answers;
- ``callbacks``: the callbacks each family sends; ``delivery``: sending them;
- ``assets``: the tiny real PNG, MP4 and MP3 results; ``inprocess``: the zero-configuration run.
"""

from app.kie.simulator.server import CALLBACK_MODES, make_app
from app.kie.simulator.state import SIM_STATE

__all__ = ["CALLBACK_MODES", "SIM_STATE", "make_app"]
