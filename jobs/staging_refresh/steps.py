"""The refresh's steps, from retiring old instances to the deploy; each returns the detail shown next to it."""

from __future__ import annotations

from datetime import datetime, timedelta

from botocore.exceptions import ClientError

from bot.aws import error_code
from jobs.staging_refresh import rds, secrets
from jobs.staging_refresh.failures import LeaseLost, VerificationFailed, _describe_error
from jobs.staging_refresh.rds import RefreshFailed, RefreshRefused
from jobs.staging_refresh.run_state import DEFAULT_BACKUP_RETENTION_DAYS, RunState
from jobs.staging_refresh.verification import Verification


class Steps(RunState):
    """The ``_do_<step>`` methods the run calls for each of ``STEPS``, and what they need alone."""

    def _do_retire_old(self) -> str:
        now, retention = self.clock.now(), timedelta(hours=self.options.old_retention_hours)
        deleted, kept, failed = [], [], []
        for run in self.runs.recent():
            old, swapped = run.state.get("old_instance"), run.state.get("swapped_at")
            if (
                not old
                or not swapped
                or run.state.get("old_deleted_at")
                or not old.startswith(self.names.old_prefix)
            ):
                continue
            due = datetime.fromisoformat(swapped) + retention
            if now < due:
                kept.append(f"{old} (until {due:%Y-%m-%d %H:%M} UTC)")
                continue
            try:
                gone = rds.delete(self.aws, identifier=old)
            except ClientError as exc:  # not worth failing the refresh for: tried again next week
                failed.append(f"{old} ({error_code(exc)})")
                continue
            if gone:
                deleted.append(old)
            self.runs.update_state(run_id=run.id, now=now, old_deleted_at=now.isoformat())
        parts = [f"deleted {', '.join(deleted)}" if deleted else "nothing due"]
        if failed:
            parts.append(f"could not delete {', '.join(failed)}")
        if kept:
            parts.append(f"kept {', '.join(kept)}")
        return "; ".join(parts)

    def _do_snapshot(self) -> str:
        secrets.salt(self.aws, secret_id=self.options.salt_secret_id)  # refuse now, before creating anything
        snapshot = rds.latest_automated_snapshot(self.aws, self.names.source)
        if snapshot is None:
            raise RefreshRefused(f"no automated snapshot of {self.names.source} exists")
        taken: datetime = snapshot["SnapshotCreateTime"]
        self._save(snapshot_id=snapshot["DBSnapshotIdentifier"], snapshot_time=taken.isoformat())
        return f"{snapshot['DBSnapshotIdentifier']} (taken {taken:%Y-%m-%d %H:%M} UTC)"

    def _do_restore(self) -> str:
        existing = rds.describe(self.aws, self.names.next)
        if existing is not None:
            if existing.run_tag != self.run_id:
                raise RefreshFailed(f"{self.names.next} exists and is not this run's copy")
            return f"{self.names.next} already restored"
        template = rds.describe(self.aws, self.names.staging) or rds.describe(self.aws, self.names.source)
        if template is None:
            raise RefreshFailed(
                f"neither {self.names.staging} nor {self.names.source} exists to copy settings from"
            )
        o = self.options
        rds.restore(
            self.aws,
            snapshot_id=self.state["snapshot_id"],
            identifier=self.names.next,
            template=template,
            run_id=self.run_id,
            security_group_ids=o.security_group_ids,
            instance_class=o.db_instance_class,
            subnet_group=o.db_subnet_group,
            parameter_group=o.db_parameter_group,
        )
        return (
            f"{self.names.next} from {self.state['snapshot_id']}, private, security group "
            f"{', '.join(o.security_group_ids)}"
        )

    def _do_password(self) -> str:
        copy = self._own_copy()
        self._password = secrets.pending_password(
            self.aws,
            secret_id=self.options.master_secret_id,
            run_id=self.run_id,
            username=copy.master_username,
        )
        rds.reset_master_password(self.aws, identifier=copy.identifier, password=self._password)
        return f"new password stored in {self.options.master_secret_id} (pending until the swap)"

    def _do_wait(self) -> str:
        def available() -> bool:
            found = rds.describe(self.aws, self.names.next)
            return found is not None and found.status == "available" and found.backups_off

        self.poller.until(f"{self.names.next} to become available with its backups off", available)
        return f"{self.names.next} is available, automated backups off"

    def _do_anonymize(self) -> str:
        copy = self._own_copy()
        if not copy.backups_off:  # its unmasked backups would become staging's
            raise RefreshFailed(f"{self.names.next} still keeps automated backups; refusing to anonymize it")
        salt = secrets.salt(self.aws, secret_id=self.options.salt_secret_id)
        dsn = self._dsn(copy)
        result = self._other_databases(dsn)
        if result is None:
            try:
                result = self.anonymize_step(
                    dsn=dsn,
                    rules_path=self.options.rules_path,
                    salt=salt,
                    on_progress=lambda _message: self._renew(),
                )
            except LeaseLost:
                raise
            except Exception as exc:  # noqa: BLE001 - the engine's failure is a failed verification
                result = Verification(ok=False, summary=f"the anonymizer stopped: {_describe_error(exc)}")
        self._save(verification=result.summary, verification_ok=result.ok)
        if not result.ok:
            raise VerificationFailed(f"verification failed ({result.summary})")
        return result.summary

    def _other_databases(self, dsn: str) -> Verification | None:
        """A failed verification if the copy holds a database the anonymizer would not mask."""
        try:
            others = self.database_gate(dsn=dsn, safe=frozenset(self.options.extra_databases_safe))
        except Exception as exc:  # noqa: BLE001 - unknown databases are as bad as unmasked ones
            return Verification(
                ok=False,
                summary=f"could not list the databases of the restored copy ({_describe_error(exc)})",
            )
        if not others:
            return None
        shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
        return Verification(
            ok=False,
            summary=f"the restored copy holds databases the anonymizer would not mask: "
            f"{shown}; drop them from prod or declare them in "
            "extra_databases_safe if they hold no PHI",
        )

    def _do_swap(self) -> str:
        if self.state.get("verification_ok") is not True:
            raise RefreshFailed("the copy was not verified; refusing to swap")
        staging = rds.describe(self.aws, self.names.staging)
        if "staging_backup_retention" not in self.state:  # recorded before the first rename
            retention = (
                staging.backup_retention if staging is not None and staging.run_tag != self.run_id else None
            )
            self._save(
                staging_backup_retention=DEFAULT_BACKUP_RETENTION_DAYS if retention is None else retention
            )
        old = self.state.get("old_instance") or self._free_old_name()
        self._save(old_instance=old, swap_started=True)
        copy = rds.describe(self.aws, self.names.next)
        if staging is not None and staging.run_tag != self.run_id:
            rds.rename(self.aws, identifier=self.names.staging, new_identifier=old)
            self.poller.until(
                f"{self.names.staging} to be renamed {old}",
                lambda: rds.describe(self.aws, self.names.staging) is None,
            )
            staging = None
        if staging is None:
            if copy is None or copy.run_tag != self.run_id:
                self._roll_back_rename(old)
                raise RefreshFailed(
                    f"{self.names.next} disappeared before the swap; {old} was renamed back to "
                    f"{self.names.staging}"
                )
            rds.rename(self.aws, identifier=self.names.next, new_identifier=self.names.staging)

        def swapped_in() -> bool:
            found = rds.describe(self.aws, self.names.staging)
            return found is not None and found.run_tag == self.run_id and found.status == "available"

        self.poller.until(f"{self.names.next} to be renamed {self.names.staging}", swapped_in)
        secrets.promote(self.aws, secret_id=self.options.master_secret_id, run_id=self.run_id)
        replaced = old if rds.describe(self.aws, old) is not None else None
        self._save(swapped_at=self.clock.now().isoformat(), old_instance=replaced)
        kept = f"; {old} is kept {self.options.old_retention_hours:g} h" if replaced else ""
        return f"{self.names.next} is now {self.names.staging}{kept} (DNS follows a rename within minutes)"

    def _do_deploy(self) -> str:
        backups = self._restore_backups()
        deployment = rds.force_new_deployment(
            self.aws, cluster=self.names.cluster, service=self.names.service
        )
        self._save(deployment=deployment)
        return f"{backups}; " + (
            f"new deployment {deployment} of {self.names.service}"
            if deployment
            else f"new deployment of {self.names.service} requested"
        )

    def _restore_backups(self) -> str:
        """Gives the new staging the replaced instance's backup retention — only ever a verified copy."""
        if self.state.get("verification_ok") is not True:
            raise RefreshFailed("the copy was not verified; refusing to turn its backups on")
        found = rds.describe(self.aws, self.names.staging)
        if found is None or found.run_tag != self.run_id:
            raise RefreshFailed(f"{self.names.staging} is not this run's copy; its backups were left alone")
        days = int(self.state.get("staging_backup_retention", DEFAULT_BACKUP_RETENTION_DAYS))
        if found.backup_retention != days:
            rds.set_backup_retention(self.aws, identifier=found.identifier, days=days)
        return f"automated backups kept {days} days" if days else "automated backups off, as before"
