"""The accounts' AES keys, as the receiver needs them to answer encrypted frames.

Keys come from ``alarm.accounts`` (the environment) and, when set, from the
JSON file ``alarm.accounts_file`` (same shape), whose entries win. The file
is read again on SIGHUP and when its modification time changes; a file that
does not parse leaves the keys in force untouched. Neither a key nor the
file's content is ever logged.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from pipeline.metrics_front_doors import RECEIVER_KEY_RELOADS
from pipeline.settings import AlarmAccount, read_accounts_file

log = logging.getLogger(__name__)


def _upper(accounts: Mapping[str, AlarmAccount]) -> dict[str, AlarmAccount]:
    return {name.upper(): entry for name, entry in accounts.items()}


class KeyRing:
    """``key_for(line, account)``: ``L<line>#<acct>`` first, then ``<acct>``."""

    def __init__(self, base: Mapping[str, AlarmAccount], path: str | None = None) -> None:
        self._base = _upper(base)
        self._path = path
        self._mtime: float | None = None
        self._entries = dict(self._base)
        if path is not None:
            self.reload()

    def key_for(self, line: str | None, account: str | None) -> str | None:
        if account is None:
            return None
        names = [f"L{line}#{account}".upper()] if line is not None else []
        names.append(account.upper())
        for name in names:
            entry = self._entries.get(name)
            if entry is not None and entry.key is not None:
                return entry.key.get_secret_value()
        return None

    def accounts(self) -> Mapping[str, AlarmAccount]:
        """Every account in force (names upper case), for line supervision's intervals."""
        return self._entries

    def __len__(self) -> int:
        return sum(1 for e in self._entries.values() if e.key is not None)

    def reload(self) -> bool:
        """Read the accounts file now; False (keys unchanged) when it cannot be used."""
        if self._path is None:
            return True
        try:
            mtime = os.stat(self._path).st_mtime
            loaded = read_accounts_file(self._path)
        except (OSError, ValueError) as exc:
            return self._failed(str(exc) if isinstance(exc, ValueError) else exc.strerror or "")
        self._mtime = mtime
        self._entries = {**self._base, **_upper(loaded)}
        RECEIVER_KEY_RELOADS.labels("ok").inc()
        log.info("accounts file %s loaded: %d accounts with a key", self._path, len(self))
        return True

    def reload_if_changed(self) -> bool:
        """Reload when the file's modification time moved; True when it did."""
        if self._path is None:
            return False
        try:
            mtime = os.stat(self._path).st_mtime
        except OSError:
            return False
        if mtime == self._mtime:
            return False
        self._mtime = mtime  # a broken file is reported once, not on every look
        return self.reload()

    def _failed(self, why: str) -> bool:
        RECEIVER_KEY_RELOADS.labels("failed").inc()
        log.error("%s; the keys in force are kept", why or f"accounts file {self._path} failed")
        return False
