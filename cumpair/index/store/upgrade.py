"""The upgrade path: a Flat space past ``upgrade_threshold`` becomes IVF-PQ (re-trained as it
grows), built aside on a worker thread from one consistent snapshot of rows, then swapped in.
"""

from __future__ import annotations

import threading

from cumpair.index import ivf, metadata
from cumpair.index.records import utcnow
from cumpair.index.store.base import DB_NAME, StoreBase, _Space, log


class Upgrade(StoreBase):
    """The upgrade path (a part of `ProductStore`)."""

    def _schedule_upgrades(self) -> None:
        for space in self._spaces.values():
            if space.upgrade_thread is not None or space.upgrade_error is not None:
                continue
            if not ivf.needs_ivfpq(space.params, space.index.ntotal, self.options):
                continue
            if self.options.background_upgrade:
                thread = threading.Thread(
                    target=self._upgrade_logged, args=(space,), name=f"upgrade-{space.name}"
                )
                space.upgrade_thread = thread
                thread.start()
            else:
                self._upgrade(space)

    def _upgrade_logged(self, space: _Space) -> None:
        try:
            self._upgrade(space)
        except Exception as exc:  # a failed build must not kill the crawl: report it in health
            log.exception("product store %s: upgrade of %r failed", self.path, space.name)
            space.upgrade_error = f"{type(exc).__name__}: {exc}"
        finally:
            space.upgrade_thread = None

    def _upgrade(self, space: _Space) -> None:
        """Build IVF-PQ aside from the rows at one sequence number, replay newer rows, swap."""
        conn = metadata.connect(self.path / DB_NAME, readonly=True)
        try:
            (base_seq, (ids, rows)), source = self._pinned(
                conn,
                space.name,
                space.spec.dim,
                lambda: (metadata.state(conn, "seq"), metadata.live_vector_rows(conn, space.name)),
            )
        finally:
            conn.close()
        vectors, ok = source.read(rows, ids)
        self._note_damage(space.name, ids[~ok])
        if not ok.any():
            return
        index, params = ivf.build_and_tune(vectors[ok], ids[ok], self.options)
        del vectors
        with self._write_lock:
            seq = metadata.state(self._conn, "seq")
            shadow = _Space(space.name, space.spec, index, params, base_seq)
            self._replay(shadow, seq)
            with space.lock.write():
                space.index, space.params = shadow.index, shadow.params
                space.applied_seq = seq
                space.dirty = True
            with self._transaction():
                event = {"space": space.name, **params.to_dict()}
                metadata.record_event(self._conn, utcnow().isoformat(), "upgrade", event)
        log.info("product store %s: %r is now %s", self.path, space.name, params.factory)
        self.flush()

    def wait_for_upgrades(self, timeout: float | None = None) -> None:
        """Block until background upgrades finish (tests, `optimize`, shutdown)."""
        for space in self._spaces.values():
            thread = space.upgrade_thread
            if thread is not None:
                thread.join(timeout)

    def optimize(self) -> dict[str, str]:
        """Upgrade/re-train every space that has outgrown its index now, then flush."""
        self._require_writer()
        self.wait_for_upgrades()
        done = {}
        for space in self._spaces.values():
            space.upgrade_error = None
            if ivf.needs_ivfpq(space.params, space.index.ntotal, self.options):
                self._upgrade(space)
            done[space.name] = space.params.factory
        self.flush()
        return done
