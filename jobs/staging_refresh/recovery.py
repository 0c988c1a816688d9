"""When a refresh run fails, and when the next run finds one that crashed: roll back, clean up, resume."""

from __future__ import annotations

import logging

from botocore.exceptions import ClientError

from bot.errors import BotError
from bot.store.refresh import RefreshRunView
from jobs.staging_refresh import rds
from jobs.staging_refresh.failures import RefreshRefusedEarly, _describe_error
from jobs.staging_refresh.report import RefreshReport
from jobs.staging_refresh.run_state import RunState

log = logging.getLogger("jobs.staging_refresh.flow")  # one name for the refresh's log, as before its split


class Recovery(RunState):
    """A failed step recorded and cleaned up (a failed swap rolled back), and a crashed run resumed or ended."""

    def _fail(self, step: str, exc: Exception) -> RefreshReport:
        message = _describe_error(exc)
        if not isinstance(exc, BotError | ClientError):
            log.error("staging refresh step %s failed", step, exc_info=exc)
        self.runs.end_step(
            run_id=self.run_id, step=step, now=self.clock.now(), outcome="failed", detail=message
        )
        self._audit_step(step, "failed", message)
        if step == "swap":
            return self._fail_swap(message)
        if not self.state.get("swap_started"):
            self._cleanup_copy()
        self.runs.finish(run_id=self.run_id, now=self.clock.now(), status="failed", error=message)
        never = " Staging was not swapped." if not self.state.get("swap_started") else ""
        return self._report("failed", f"Staging refresh failed at “{step}”: {message}.{never}")

    def _fail_swap(self, message: str) -> RefreshReport:
        """Puts the old staging back if the copy was not renamed yet; if staging is still missing under
        its name, the run stays recorded as running so that the next run finishes the swap."""
        try:
            old = self.state.get("old_instance")
            if old and rds.describe(self.aws, self.names.next) is not None:
                self._roll_back_rename(old)
            staging_there = rds.describe(self.aws, self.names.staging) is not None
        except Exception as exc:  # noqa: BLE001 - AWS still failing: the next run converges
            log.warning("could not check staging after a failed swap: %s", _describe_error(exc))
            staging_there = False
        if not staging_there:
            return self._report(
                "failed",
                f"Staging refresh failed while swapping: {message}. "
                f"{self.names.staging} is missing under its name; the next run "
                "finishes the swap.",
            )
        self._cleanup_copy()
        self.runs.finish(run_id=self.run_id, now=self.clock.now(), status="failed", error=message)
        return self._report(
            "failed",
            f"Staging refresh failed while swapping: {message}. {self.names.staging} was left as it was.",
        )

    def _recover(self) -> RefreshRunView | None:
        """We hold the lock, so every run still marked running is dead: resume the latest, unless
        it died while anonymizing (then delete its half-masked copy and start afresh)."""
        unfinished = self.runs.unfinished()
        for stale in unfinished[:-1]:
            self.runs.finish(run_id=stale.id, now=self.clock.now(), status="abandoned", error="superseded")
        if not unfinished:
            return None
        last = unfinished[-1]
        if last.step == "anonymize" and "anonymize" not in last.state.get("done", []):
            self.run_id, self.state = last.id, last.state
            self._cleanup_copy()
            self.runs.finish(
                run_id=last.id,
                now=self.clock.now(),
                status="abandoned",
                error="stopped while anonymizing; its half-anonymized copy was deleted",
            )
            self.notes.append(
                f"Run {last.id[:8]} stopped while anonymizing; its half-anonymized copy was deleted "
                "and this run started from a fresh restore."
            )
            return None
        if last.step == "cleanup":
            # It died while deleting its copy after a failure (a failed verification, say): it was
            # failing, so finish that, never resume it; resuming would anonymize its half-masked,
            # unverified copy a second time against "originals" that are no longer the originals.
            self.run_id, self.state = last.id, last.state
            self._cleanup_copy()
            self.runs.finish(
                run_id=last.id,
                now=self.clock.now(),
                status="failed",
                error="stopped while deleting its copy after a failure; the copy was deleted",
            )
            self.notes.append(
                f"Run {last.id[:8]} stopped while cleaning up after a failure; its copy was deleted "
                "and this run started from a fresh restore."
            )
            self.run_id, self.state = "", {}
            return None
        return last

    def _clear_leftover_copy(self) -> None:
        """A ``-next`` left by an earlier run of ours (failed, abandoned) is deleted before restoring;
        one not made by a refresh is not ours to delete."""
        found = rds.describe(self.aws, self.names.next)
        if found is None:
            return
        known = {run.id for run in self.runs.recent()}
        if found.run_tag not in known:
            raise RefreshRefusedEarly(
                f"{self.names.next} exists and was not made by a staging refresh; "
                "delete or rename it, then run again"
            )
        rds.delete(self.aws, identifier=found.identifier)
        self.poller.until(
            f"the leftover {found.identifier} to be deleted",
            lambda: rds.describe(self.aws, self.names.next) is None,
        )
        self.notes.append(f"Deleted the leftover {found.identifier} of run {found.run_tag[:8]}.")

    def _cleanup_copy(self) -> None:
        found = rds.describe(self.aws, self.names.next)
        if found is None or found.run_tag != self.run_id:
            return
        self.runs.begin_step(run_id=self.run_id, step="cleanup", now=self.clock.now())
        try:
            rds.delete(self.aws, identifier=found.identifier)
        except Exception as exc:  # noqa: BLE001 - the next run deletes it
            self.runs.end_step(
                run_id=self.run_id,
                step="cleanup",
                now=self.clock.now(),
                outcome="failed",
                detail=f"{_describe_error(exc)}; the next run deletes it",
            )
            return
        self.runs.end_step(
            run_id=self.run_id,
            step="cleanup",
            now=self.clock.now(),
            outcome="done",
            detail=f"deleted {found.identifier}",
        )
