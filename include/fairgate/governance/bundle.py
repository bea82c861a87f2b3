"""Release bundles: one file that holds what was decided about a model version, checkable offline.

``build`` gathers, for one registered version, everything an auditor asks for: the registry
manifest (and the model file), the deploying run's report, model card, datasheet, policy file and
quality page, every evidence record about the version (lifecycle runs that produced it, its
review, deployments, rollbacks and audits), the hash-chain proof from those records to the log's
head, and the Annex IV map generated from them. ``verify`` checks such a file with nothing but
the file.

What ``verify`` proves, and what it cannot:

- every member is the one the index lists (sha256, no member added or removed);
- the evidence records form an unbroken hash chain from the first record of the release to the
  head the bundle names (editing, removing or re-ordering a record breaks a link);
- each artifact is the one its evidence record names by sha256, and the model file is the one the
  manifest names;
- a bundle rewritten wholesale (every member, index and chain recomputed) is self-consistent, so
  the head hash is the anchor to the outside world: ``verify(..., expected_head=...)`` compares it
  with the head the live log reports (``fairgate verify-log`` prints it).

The chain segment starts at the release's first record, so records of other runs of the same
model that fall in between are included too: they are links of the proof.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fairgate.errors import CODE_VERSION, BundleError, NotFoundError
from fairgate.governance import annex_iv, approval, evidence, incidents, registry
from fairgate.governance.records import LifecycleRecord
from fairgate.policy.loader import parse_policy
from fairgate.policy.reading import read_policy_yaml
from fairgate.storage.base import read_recorded

if TYPE_CHECKING:
    from fairgate.storage.base import ArtifactStore

FORMAT = "fairgate-bundle/1"
INDEX = "bundle.json"
CHAIN = "evidence/chain/"
HEAD = "evidence/HEAD.json"
# Zip entries carry this fixed time: a member's bytes, not the clock, say what it is.
_EPOCH = (1980, 1, 1, 0, 0, 0)
# Artifacts of the deploying run: bundle member, the evidence record's field holding its {uri, sha256}.
RUN_ARTIFACTS = (
    ("report.html", ("report",)),
    ("model_card.md", ("model_card",)),
    ("datasheet.md", ("datasheet",)),
    ("policy.yaml", ("policy",)),
    ("quality.html", ("quality", "page")),
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def resolve_version(store: ArtifactStore, model: str, version: str) -> str:
    """A full version from a full sha256, a unique prefix of at least 6 characters, or ``production``."""
    if version == "production":
        current = approval.production(store, model)  # the pointer's version only if the chain approves it
        if current is None:
            raise BundleError(f"Model {model!r} has nothing in production; name a version (fairgate models).")
        return current.version
    known = [str(m["version"]) for m in registry.list_versions(store, model)]
    matches = [v for v in known if v.startswith(version)] if len(version) >= 6 else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise BundleError(
            f"Model {model!r} has no registered version {version!r} (at least 6 characters of a "
            f"sha256, or 'production'); known: {[v[:12] for v in known] or 'none'}."
        )
    raise BundleError(f"Version prefix {version!r} of {model!r} is ambiguous: {[v[:12] for v in matches]}.")


def concerns(record: dict[str, Any], version: str) -> bool:
    """Whether an evidence record is about ``version``: a run that produced or deployed it, a rollback
    to or from it, an audit that judged it (or scored with it), or an incident opened about it."""
    kind = record.get("kind")
    if kind == "lifecycle":
        run = LifecycleRecord.from_json(record)
        return version in (
            run.model and run.model.sha256,
            run.model and run.model.version,
            run.deployment and run.deployment.version,
        )
    if kind == "deployment":
        return bool(record.get("version") == version)
    if kind == "rollback":
        return version in (record.get("from_version"), record.get("to_version"))
    if kind == "audit":
        return record.get("judged_version") == version or version in (record.get("model_versions") or [])
    if kind == "incident":
        return bool(record.get("version") == version)
    return False


def _field(record: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    value: Any = record
    for part in path:
        value = (value or {}).get(part) if isinstance(value, dict) else None
    return value if isinstance(value, dict) and value.get("sha256") else None


def deploying_record(records: list[dict[str, Any]], version: str) -> dict[str, Any] | None:
    """The lifecycle record whose artifacts describe the release: the last run that deployed (or
    registered) it, else the last run that produced its bytes."""
    runs = [e for e in records if e["record"].get("kind") == "lifecycle"]
    deployed = [e for e in runs if ((e["record"].get("deployment") or {}).get("version")) == version]
    chosen = deployed or runs
    return chosen[-1] if chosen else None


@dataclass
class _Builder:
    members: dict[str, bytes] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, path: str, data: bytes, role: str) -> None:
        self.members[path] = data
        self.roles[path] = role


def build(
    store: ArtifactStore, model: str, version: str, *, include_model: bool = True, now: datetime | None = None
) -> bytes:
    """The release bundle of ``model`` ``version`` (a full sha256), as the bytes of a zip file."""
    manifest_key = f"{registry.version_prefix(model, version)}/manifest.json"
    try:
        manifest_bytes = store.get(manifest_key)
    except NotFoundError:
        raise BundleError(
            f"Model {model!r} has no registered version {version[:12]} ({store.uri(manifest_key)} not found)."
        ) from None
    manifest = json.loads(manifest_bytes)
    check = evidence.verify(store, model)
    if not check.intact_to_head:
        raise BundleError(
            f"The evidence log of {model!r} does not verify, so no bundle is made from it: {check.problems[0]}"
        )
    keys = evidence.keys_to_head(store, model)  # a record past HEAD is not evidence: not bundled
    raw = [store.get(k) for k in keys]
    entries = [json.loads(b) for b in raw]
    mine = [e for e in entries if concerns(e["record"], version)]
    if not mine:
        raise BundleError(f"No evidence record of {model!r} concerns version {version[:12]}; nothing to bundle.")
    head = {"seq": entries[-1]["seq"], "hash": entries[-1]["hash"]}  # HEAD, as verified above
    head_bytes = evidence.canonical(head)
    if check.past_head:
        out_notes = [f"record(s) {list(check.past_head)} past HEAD were left out (not evidence until HEAD names them)"]
    else:
        out_notes = []

    out = _Builder(notes=out_notes)
    out.add("manifest.json", manifest_bytes, "registry manifest")
    if include_model:
        model_file = store.get(f"{registry.version_prefix(model, version)}/model.skops")
        if _sha(model_file) != version:
            raise BundleError(
                f"The model file of {model} version {version[:12]} no longer matches its sha256: "
                "it was replaced in the store. No bundle is made."
            )
        out.add("model.skops", model_file, "model file")
    run = deploying_record(mine, version)
    if run is not None:
        for name, path in RUN_ARTIFACTS:
            ref = _field(run["record"], path)
            if ref is None or not ref.get("uri"):
                out.notes.append(f"{name}: run {run['record'].get('run_id')} kept none in the store")
                continue
            data = read_recorded(store, ref["uri"])
            if data is None:
                out.notes.append(f"{name}: {ref['uri']} is no longer in the store")
                continue
            if _sha(data) != ref["sha256"]:
                raise BundleError(
                    f"{name} at {ref['uri']} no longer matches the sha256 that evidence record "
                    f"#{run['seq']} names: the store was changed after the run. No bundle is made."
                )
            out.add(name, data, f"{'.'.join(path)} of evidence record #{run['seq']}")
    for entry in mine:  # each audit's full result, while the store still holds that version of it
        rec = entry["record"]
        if rec.get("kind") == "audit" and rec.get("audit_uri"):
            data = read_recorded(store, rec["audit_uri"])
            if data and _sha(data) == rec.get("audit_sha256"):
                out.add(f"audits/{entry['seq']:010d}.json", data, f"audit result of evidence record #{entry['seq']}")
            else:
                out.notes.append(
                    f"audit of record #{entry['seq']}: the stored result was replaced by a later "
                    "re-run of that date; the record keeps its sha256"
                )
    concerned = [i for i in incidents.incidents(store, model) if i["version"] == version]
    if concerned:
        text = json.dumps(concerned, indent=2, sort_keys=True).encode()
        out.add("incidents.json", text, "incidents of this version, as their evidence records stand")
    if "policy.yaml" in out.members:  # the plan the approving policy amounts to
        approving = parse_policy(read_policy_yaml(out.members["policy.yaml"], source="the bundle's policy.yaml"))
        out.add("post_market_plan.md", incidents.monitoring_plan(approving).encode(), "post-market monitoring plan")
    first = mine[0]["seq"]
    for entry, data in zip(entries, raw, strict=True):
        if entry["seq"] >= first:
            role = "release record" if concerns(entry["record"], version) else "chain link"
            out.add(f"{CHAIN}{entry['seq']:010d}.json", data, role)
    out.add(HEAD, head_bytes, "log head when the bundle was made")
    release = [e["record"] for e in mine]
    mapping = annex_iv.for_release(manifest, release, members=sorted(out.members))
    out.add("annex_iv.json", json.dumps(mapping, indent=2, sort_keys=True, default=str).encode(), "Annex IV map")
    out.add("annex_iv.md", annex_iv.markdown(mapping).encode(), "Annex IV map")

    index = {
        "format": FORMAT,
        "model": model,
        "version": version,
        "code_version": CODE_VERSION,
        "created_at": (now or datetime.now(UTC)).isoformat(),
        "head": {"seq": head["seq"], "hash": head["hash"]},
        "release_records": [e["seq"] for e in mine],
        "deploying_record": run and run["seq"],
        "notes": out.notes,
        "members": [
            {"path": p, "sha256": _sha(d), "size": len(d), "role": out.roles[p]} for p, d in sorted(out.members.items())
        ],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in [(INDEX, json.dumps(index, indent=2, sort_keys=True).encode()), *sorted(out.members.items())]:
            zf.writestr(zipfile.ZipInfo(name, date_time=_EPOCH), data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


@dataclass
class BundleCheck:
    ok: bool
    problems: list[str]
    index: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "model": self.index.get("model"),
            "version": self.index.get("version"),
            "head": self.index.get("head"),
            "release_records": self.index.get("release_records"),
            "members": len(self.index.get("members", [])),
        }


def _read_members(data: bytes) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            if len(set(names)) != len(names):
                raise BundleError("The bundle holds two members with the same name; it was tampered with.")
            return {n: zf.read(n) for n in names}
    except zipfile.BadZipFile as exc:
        raise BundleError(f"Not a Fairgate bundle: the file is not a readable zip ({exc}).") from None


def verify(data: bytes, *, expected_head: str | None = None) -> BundleCheck:
    """Check a bundle with nothing but its bytes; ``problems`` lists what does not verify, first first."""
    members = _read_members(data)
    if INDEX not in members:
        raise BundleError(f"Not a Fairgate bundle: it has no {INDEX}.")
    try:
        index = json.loads(members.pop(INDEX))
    except json.JSONDecodeError as exc:
        return BundleCheck(False, [f"{INDEX} is not valid JSON ({exc})"])
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        return BundleCheck(
            False, [f"{INDEX}: format {index.get('format') if isinstance(index, dict) else None!r} is not {FORMAT!r}"]
        )
    try:
        problems = _check_members(index, members)
        problems += _check_chain(index, members, expected_head)
        problems += _check_artifacts(index, members)
        problems += _check_bound(index, members)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a hand-made index or record
        return BundleCheck(False, [f"{INDEX} or a record is malformed ({type(exc).__name__}: {exc})"], index)
    return BundleCheck(not problems, problems, index)


def _check_members(index: dict[str, Any], members: dict[str, bytes]) -> list[str]:
    problems = []
    listed = {m["path"]: m for m in index.get("members", [])}
    for path, meta in listed.items():
        if path not in members:
            problems.append(f"{path}: listed in {INDEX} but missing from the bundle (removed)")
        elif _sha(members[path]) != meta["sha256"]:
            problems.append(
                f"{path}: sha256 {_sha(members[path])[:16]} does not match {meta['sha256'][:16]} in {INDEX} (edited)"
            )
    problems += [
        f"{path}: not listed in {INDEX} (added after the bundle was made)"
        for path in sorted(set(members) - set(listed))
    ]
    return problems


def _chain_entries(members: dict[str, bytes]) -> tuple[list[dict[str, Any]], list[str]]:
    entries, problems = [], []
    for path in sorted(p for p in members if p.startswith(CHAIN)):
        try:
            entry = json.loads(members[path])
        except json.JSONDecodeError:
            problems.append(f"{path}: not valid JSON")
            continue
        named = path[len(CHAIN) :].removesuffix(".json")
        if not named.isdigit() or int(named) != entry.get("seq"):
            problems.append(f"{path}: holds record seq {entry.get('seq')} (records re-ordered or re-numbered)")
        entries.append(entry)
    return entries, problems


def _check_chain(index: dict[str, Any], members: dict[str, bytes], expected_head: str | None) -> list[str]:
    entries, problems = _chain_entries(members)
    if not entries:
        return [*problems, "the bundle holds no evidence records"]
    prev: str | None = None
    for i, entry in enumerate(entries):
        seq = entry.get("seq")
        where = f"{CHAIN}{seq:010d}.json" if isinstance(seq, int) else f"chain record {i + 1}"
        if i and seq != entries[i - 1].get("seq", 0) + 1:
            problems.append(f"{where}: follows record {entries[i - 1].get('seq')} (a record between was removed)")
        if evidence.entry_hash(
            seq if isinstance(seq, int) else -1, entry.get("prev_hash", ""), entry.get("record", {})
        ) != entry.get("hash"):
            problems.append(f"{where}: its content does not match its hash (edited)")
        if prev is not None and entry.get("prev_hash") != prev:
            problems.append(
                f"{where}: links to {str(entry.get('prev_hash'))[:12]}, not to the record before it "
                f"({prev[:12]}): a record was changed, removed or re-ordered"
            )
        prev = entry.get("hash")
    try:
        head = json.loads(members.get(HEAD, b"null"))
    except json.JSONDecodeError:
        head = None
    last = entries[-1]
    if not isinstance(head, dict) or (head.get("seq"), head.get("hash")) != (last.get("seq"), last.get("hash")):
        problems.append(f"{HEAD}: does not name the last record of the chain (#{last.get('seq')})")
    if index.get("head") != {"seq": last.get("seq"), "hash": last.get("hash")}:
        problems.append(f"{INDEX}: head {index.get('head')} is not the chain's last record")
    if expected_head and last.get("hash") != expected_head:
        problems.append(
            f"head hash {str(last.get('hash'))[:16]} is not the expected {expected_head[:16]} "
            "(the bundle does not end at the log head you know)"
        )
    by_seq = {e.get("seq"): e for e in entries}
    for seq in index.get("release_records", []):
        rec = (by_seq.get(seq) or {}).get("record")
        if rec is None:
            problems.append(f"release record #{seq} is not in the chain")
        elif rec.get("model_name") != index.get("model") or not concerns(rec, index.get("version", "")):
            problems.append(f"release record #{seq} is not about {index.get('model')} {str(index.get('version'))[:12]}")
    return problems


def _promotions(release: list[dict[str, Any]], version: str) -> list[dict[str, Any]]:
    """The records that put ``version`` in production (deployments and rollbacks to it)."""
    return [
        r
        for r in release
        if (r.get("kind") == "deployment" and r.get("version") == version)
        or (r.get("kind") == "rollback" and r.get("to_version") == version)
    ]


def _check_bound(index: dict[str, Any], members: dict[str, bytes]) -> list[str]:
    """The members no evidence record names by its sha256 are bound to the chain another way.

    ``manifest.json``: the ``manifest_sha256`` its deployment records name (records written before
    releases bound the manifest name none: then only its ``model_sha256`` is checked). The Annex IV
    map: re-derived from the manifest, the chain's release records and the member list, by the
    release that made the bundle, and compared.
    """
    problems = []
    version = index.get("version", "")
    entries, _ = _chain_entries(members)
    release = [e["record"] for e in entries if concerns(e.get("record", {}), version)]
    manifest_bytes = members.get("manifest.json", b"")
    promotions = _promotions(release, version)
    for r in promotions:  # every record that promoted the version names the manifest it approved
        if r.get("manifest_sha256") != _sha(manifest_bytes):
            problems.append(
                f"manifest.json: sha256 {_sha(manifest_bytes)[:16]} is not the manifest_sha256 its "
                f"{r.get('kind')} record names ({str(r.get('manifest_sha256'))[:16]}, run {r.get('run_id')}; edited)"
            )
        files: dict[str, Any] = r["files"] if isinstance(r.get("files"), dict) else {}
        for name in ("model.skops",):
            if name in members and name in files and files[name].get("sha256") != _sha(members[name]):
                problems.append(f"{name}: not the file its {r.get('kind')} record (run {r.get('run_id')}) binds")
    if not promotions:
        problems.append(
            "manifest.json: no record in the bundle put this version in production, so no record binds its "
            "manifest (a bundle of a version never deployed says so here)"
        )
    if index.get("code_version") != CODE_VERSION:
        problems.append(
            f"annex_iv: the bundle was made by release {index.get('code_version')!r}; verify it with that "
            f"release (this is {CODE_VERSION}), which re-derives its Annex IV map"
        )
        return problems
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        return problems  # said by _check_artifacts
    if "post_market_plan.md" in members:  # derived from the bound policy file: derived again and compared
        try:
            kept = read_policy_yaml(members.get("policy.yaml", b""), source="the bundle's policy.yaml")
            plan = incidents.monitoring_plan(parse_policy(kept)).encode()
        except Exception as exc:  # a policy this release cannot read: said, not raised
            plan = f"unreadable policy: {exc}".encode()
        if members["post_market_plan.md"] != plan:
            problems.append("post_market_plan.md: not the plan the bundle's policy.yaml gives (edited)")
    listed = sorted(p for p in members if p not in ("annex_iv.json", "annex_iv.md"))
    mapping = annex_iv.for_release(manifest, release, members=listed)
    expected_json = json.dumps(mapping, indent=2, sort_keys=True, default=str).encode()
    if members.get("annex_iv.json") != expected_json:
        problems.append("annex_iv.json: not the map the manifest and the release records give (edited)")
    if members.get("annex_iv.md") != annex_iv.markdown(mapping).encode():
        problems.append("annex_iv.md: not the map the manifest and the release records give (edited)")
    return problems


def _check_artifacts(index: dict[str, Any], members: dict[str, bytes]) -> list[str]:
    problems = []
    version = index.get("version", "")
    try:
        manifest = json.loads(members.get("manifest.json", b"{}"))
    except json.JSONDecodeError:
        return ["manifest.json: not valid JSON"]
    if manifest.get("model_sha256") != version:
        problems.append(
            f"manifest.json: model_sha256 {str(manifest.get('model_sha256'))[:12]} is not the "
            f"bundle's version {version[:12]}"
        )
    if "model.skops" in members and _sha(members["model.skops"]) != manifest.get("model_sha256"):
        problems.append("model.skops: its sha256 is not the manifest's model_sha256 (the model file was replaced)")
    for member in (p for p in members if p.startswith("audits/")):
        entry = members.get(f"{CHAIN}{member.removeprefix('audits/')}")
        expected = json.loads(entry).get("record", {}).get("audit_sha256") if entry else None
        if _sha(members[member]) != expected:
            problems.append(f"{member}: sha256 is not the audit_sha256 its evidence record names")
    run_seq = index.get("deploying_record")
    if run_seq is None:
        return problems
    entry = members.get(f"{CHAIN}{run_seq:010d}.json")
    record = json.loads(entry).get("record", {}) if entry else {}
    for name, path in RUN_ARTIFACTS:
        ref = _field(record, path)
        if name in members and ref is None:
            problems.append(f"{name}: evidence record #{run_seq} names no such artifact")
        elif name in members and ref is not None and _sha(members[name]) != ref["sha256"]:
            problems.append(
                f"{name}: sha256 {_sha(members[name])[:16]} is not the {ref['sha256'][:16]} that "
                f"evidence record #{run_seq} names"
            )
    return problems
