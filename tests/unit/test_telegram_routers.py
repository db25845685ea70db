"""Every handler and filter of the bot is a coroutine: aiogram runs a plain function (or a magic
``F`` filter) in a worker thread, so one sync filter on a router costs a thread hop for every
update that reaches it."""

from __future__ import annotations

from aiogram import Dispatcher

from app.telegram.access import make_admin_router
from app.telegram.commands import make_router as make_commands_router
from app.telegram.menus import make_router as make_menus_router


def test_every_handler_and_filter_is_awaited_in_the_loop() -> None:
    dispatcher = Dispatcher()
    for router in (make_admin_router((1,)), make_commands_router(), make_menus_router()):
        dispatcher.include_router(router)
    checked, threaded = 0, []
    for router in dispatcher.chain_tail:
        for name, observer in router.observers.items():
            for handler in observer.handlers:
                for part in [handler, *(handler.filters or [])]:
                    checked += 1
                    if not part.awaitable:
                        threaded.append(f"{router.name}.{name}: {part.callback!r}")
            for event_filter in observer._handler.filters or []:
                checked += 1
                if not event_filter.awaitable:
                    threaded.append(f"{router.name}.{name} (router filter): {event_filter.callback!r}")
    assert checked > 10
    assert threaded == []
