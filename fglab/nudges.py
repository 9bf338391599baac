"""The scheduler's ear for machines with room again (`tasks.contract.dispatch_channel`).

A run that ended with no webhook or sweep waiting on it needs no Celery message of its
own (about ten Redis commands): its machine publishes one nudge, and this listener, on a
thread of the scheduler's worker, dispatches once for all the nudges that came together.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from redis import Redis, RedisError

logger = logging.getLogger(__name__)

#: Seconds a listener waits for a message before it looks at its stop flag.
LISTEN_TICK = 1.0


def listen_for_nudges(
    redis: Redis, channel: str, dispatch: Callable[[], object], stop: threading.Event
) -> None:
    """Dispatch after each burst of nudges until `stop` is set; reconnects after errors."""
    while not stop.is_set():
        pubsub = redis.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(channel)
            while not stop.is_set():
                if pubsub.get_message(timeout=LISTEN_TICK) is None:
                    continue
                while pubsub.get_message(timeout=0) is not None:
                    pass  # the rest of the burst: one dispatch serves them all
                try:
                    dispatch()
                except Exception:  # a dispatch that failed must not end the listener
                    logger.exception("dispatch after a nudge failed")
        except RedisError as e:
            logger.warning("dispatch channel lost (%s); reconnecting", e)
            stop.wait(LISTEN_TICK)
        finally:
            pubsub.close()


def start_listening(redis: Redis, channel: str, dispatch: Callable[[], object]) -> threading.Event:
    """Listen on a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(
        target=listen_for_nudges,
        args=(redis, channel, dispatch, stop),
        name="dispatch-nudges",
        daemon=True,
    )
    thread.start()
    return stop
