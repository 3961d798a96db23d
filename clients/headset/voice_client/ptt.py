"""Push-to-talk inputs of the headset client.

- A terminal key (default: space). Terminals report key presses but never releases (holding a
  key only repeats it), so a terminal key *toggles* talking: press to talk, press again to stop.
- A headset or keyboard button through Linux evdev (``--ptt-device /dev/input/eventN``): real
  press and release, so it is hold-to-talk. Needs the optional ``evdev`` package and read access
  to the device (the ``input`` group).

Both call ``on_press(bool)``; :class:`PttState` merges them (talking while any source holds).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import tty
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

__all__ = [
    "DEFAULT_EVDEV_KEYS",
    "PttState",
    "evdev_reader",
    "terminal_key_map",
]

# Keys a headset or a Bluetooth remote sends for its main button.
DEFAULT_EVDEV_KEYS = ("KEY_PLAYPAUSE", "KEY_MEDIA", "KEY_PHONE", "KEY_PLAYCD", "BTN_0")


class PttState:
    """Which sources hold push-to-talk; calls ``on_change`` when the result flips."""

    def __init__(self, on_change: Callable[[bool], None]) -> None:
        self._on_change = on_change
        self._held: set[str] = set()

    @property
    def pressed(self) -> bool:
        return bool(self._held)

    def set(self, source: str, pressed: bool) -> None:
        before = self.pressed
        if pressed:
            self._held.add(source)
        else:
            self._held.discard(source)
        if self.pressed != before:
            self._on_change(self.pressed)

    def toggle(self, source: str) -> None:
        self.set(source, source not in self._held)


@contextlib.contextmanager
def terminal_key_map(
    keys: Mapping[str, Callable[[], None]], stream: TextIO | None = None
) -> Iterator[bool]:
    """While the block runs, each press of a key of ``keys`` on the terminal calls its function
    (push-to-talk, emergency and replay share the terminal: one reader per file descriptor).

    Yields False (and does nothing) when standard input is not a terminal."""
    stream = stream or sys.stdin
    if not keys or not stream.isatty():
        yield False
        return
    fd = stream.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def readable() -> None:
        data = os.read(fd, 64).decode(errors="ignore")
        for ch in data:
            action = keys.get(ch)
            if action is not None:
                action()

    tty.setcbreak(fd)
    loop.add_reader(fd, readable)
    try:
        yield True
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def evdev_reader(path: str, keys: tuple[str, ...], on_press: Callable[[bool], None]) -> None:
    """Follow button presses and releases on an evdev device until cancelled."""
    try:
        import evdev  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise RuntimeError("--ptt-device needs the 'evdev' package (pip install evdev)") from None
    try:
        device: Any = evdev.InputDevice(path)
    except OSError as exc:
        raise RuntimeError(f"cannot open {path}: {exc.strerror or exc}") from None
    codes = {evdev.ecodes.ecodes[k] for k in keys if k in evdev.ecodes.ecodes}
    try:
        async for event in device.async_read_loop():
            if event.type == evdev.ecodes.EV_KEY and event.code in codes and event.value in (0, 1):
                on_press(event.value == 1)
    finally:
        device.close()
