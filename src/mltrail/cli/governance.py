"""Governance commands: access, keys, policies, attestations, approvals, promotion."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mltrail.attest import dsse, intoto
from mltrail.attest.keys import generate_key, load_private_key, save_private_key
from mltrail.canonical import loads
from mltrail.cli.main import app, state
from mltrail.cli.options import JsonOpt, key_values
from mltrail.cli.render import console, emit_json, show_appended, table
from mltrail.errors import InvalidInputError
from mltrail.service.governance import FAIRNESS_PREDICATE, fairness_predicate

KeyOpt = Annotated[
    Path | None, typer.Option("--key", help="Your private key file (PEM, mode 0600).")
]

access = typer.Typer(help="Principals, roles, grants, keys and API tokens.", no_args_is_help=True)
key = typer.Typer(help="Create signing keys for people and services.", no_args_is_help=True)
policy = typer.Typer(help="Promotion policies as code.", no_args_is_help=True)
for name, group in (("access", access), ("key", key), ("policy", policy)):
    app.add_typer(group, name=name)


@key.command("generate")
def key_generate(
    path: Annotated[Path, typer.Argument(help="Private key file to create (mode 0600).")],
    kind: Annotated[str, typer.Option("--type", help="ed25519 or p256.")] = "ed25519",
) -> None:
    """Create a private key file and print its public key (PEM) for `mltrail access add-key`.

    Example: mltrail key generate ~/.mltrail-keys/lead.ds.key > lead.ds.pub
    """
    private = generate_key(kind)
    save_private_key(path, private)
    console().print(dsse.public_key_pem(private.public_key()), end="", markup=False)


@access.command("add")
def access_add(
    ctx: typer.Context,
    principal_id: Annotated[str, typer.Argument(help="Principal id, e.g. lead.ds or svc.ci.")],
    name: Annotated[str, typer.Option(help="Printed name, e.g. 'Dana Kim'.")],
    kind: Annotated[str, typer.Option("--type", help="user or service.")] = "user",
    role: Annotated[list[str] | None, typer.Option(help="Role on every model, repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a user or service account (admin only).

    Example: mltrail access add lead.ds --name "Dana Kim" --role approver
    """
    with state(ctx).open() as reg:
        done = reg.add_principal(principal_id, display_name=name, kind=kind, roles=role or [])
    show_appended(done, as_json, "principal added")


@access.command("add-key")
def access_add_key(
    ctx: typer.Context,
    principal_id: Annotated[str, typer.Argument(help="Principal id.")],
    public_key: Annotated[
        Path, typer.Option(help="Public key PEM file.", exists=True, dir_okay=False)
    ],
    as_json: JsonOpt = False,
) -> None:
    """Register a principal's public key (Ed25519 or P-256) for signed approvals and attestations.

    Example: mltrail access add-key lead.ds --public-key lead.ds.pub
    """
    with state(ctx).open() as reg:
        done = reg.add_key(principal_id, public_key.read_bytes())
    show_appended(done, as_json, "key registered")


@access.command("grant")
def access_grant(
    ctx: typer.Context,
    principal_id: Annotated[str, typer.Argument(help="Principal id.")],
    role: Annotated[
        str,
        typer.Argument(help="viewer, contributor, approver, deployer, admin, or a policy role."),
    ],
    model: Annotated[str, typer.Option(help="Model name, or * for every model.")] = "*",
    as_json: JsonOpt = False,
) -> None:
    """Grant a role on a model (or on every model).

    Example: mltrail access grant risk.officer approver --model fraud
    """
    with state(ctx).open() as reg:
        done = reg.grant(principal_id, role, scope=model)
    show_appended(done, as_json, "granted")


@access.command("revoke")
def access_revoke(
    ctx: typer.Context,
    principal_id: Annotated[str, typer.Argument(help="Principal id.")],
    role: Annotated[str | None, typer.Option(help="Revoke only this role.")] = None,
    model: Annotated[str, typer.Option(help="Scope of the role.")] = "*",
    key_id: Annotated[str | None, typer.Option(help="Revoke only this key.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a role, a key, or (with neither) the principal and all it holds.

    Example: mltrail access revoke ds.intern
    """
    with state(ctx).open() as reg:
        done = reg.revoke(principal_id, role=role, scope=model, key_id=key_id)
    show_appended(done, as_json, "revoked")


@access.command("token")
def access_token(
    ctx: typer.Context,
    principal_id: Annotated[str, typer.Argument(help="Principal id.")],
) -> None:
    """Issue an API token (printed once; only its SHA-256 is stored).

    Example: mltrail access token svc.ci
    """
    with state(ctx).open() as reg:
        token, _ = reg.issue_token(principal_id)
    console().print(token, markup=False)


@policy.command("set")
def policy_set(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Policy YAML.", exists=True, dir_okay=False)],
    as_json: JsonOpt = False,
) -> None:
    """Put a policy in force for its scope and stage (a new version; the old one stays in the log).

    Example: mltrail policy set policies/fraud-production.yaml
    """
    with state(ctx).open() as reg:
        done = reg.set_policy(file.read_text())
    show_appended(done, as_json, f"policy v{done.event.metadata['version']} in force")


@policy.command("check")
def policy_check(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version, e.g. fraud:v5.")],
    to: Annotated[str, typer.Option(help="Target stage.")] = "production",
    as_json: JsonOpt = False,
) -> None:
    """Dry run of the promotion gate: each rule and whether it holds. Exits 6 if it would fail.

    Example: mltrail policy check fraud:v5 --to production
    """
    with state(ctx).open() as reg:
        gate, info = reg.check_promotion(version, to=to)
    result = {**gate.to_dict(), "policy": info}
    if as_json:
        emit_json(result)
    else:
        where = (
            f"policy {info['scope']}/{info['stage']} v{info['version']}" if info else "no policy"
        )
        table(
            f"{version} -> {to} under {where}",
            ("rule", "holds", "detail"),
            ((r.rule, "yes" if r.ok else "NO", r.detail) for r in gate.rules),
        )
    if not gate:
        raise typer.Exit(6)


def _predicate(
    kind: str,
    result: str,
    name: str | None,
    report_digest: str | None,
    metrics: dict[str, Any],
    evaluator: str,
    when: str,
) -> tuple[str, dict[str, Any]]:
    if kind == "fairness":
        if report_digest is None or len(metrics) != 1:
            raise InvalidInputError(
                "a fairness attestation needs --report FILE and one --metric NAME=VALUE"
            )
        ((metric, value),) = metrics.items()
        return FAIRNESS_PREDICATE, fairness_predicate(
            evaluator=evaluator,
            evaluated_at=when,
            report_sha256=report_digest,
            metric=metric,
            value=value,
            result=result,
        )
    if kind in ("test-result", "drift"):
        config = (
            [{"name": name or kind, "digest": {"sha256": report_digest}}]
            if report_digest
            else [{"name": name or kind, "uri": "urn:mltrail:none"}]
        )
        predicate = intoto.test_result_predicate(result, config)  # type: ignore[arg-type]
        if metrics:
            predicate["metrics"] = metrics
        return intoto.TEST_RESULT, predicate
    raise InvalidInputError(f"attestation type {kind!r} is not one of test-result, drift, fairness")


@app.command()
def attest(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version, e.g. fraud:v5.")],
    key_file: Annotated[Path, typer.Option("--key", help="Your private key file.")],
    kind: Annotated[
        str, typer.Option("--type", help="test-result, drift, fairness or slsa-provenance.")
    ] = "test-result",
    result: Annotated[str, typer.Option(help="PASSED, WARNED or FAILED.")] = "PASSED",
    name: Annotated[str | None, typer.Option(help="Test name, e.g. unit-tests.")] = None,
    report: Annotated[
        Path | None, typer.Option(help="Report file; stored, its SHA-256 linked.", exists=True)
    ] = None,
    metric: Annotated[list[str] | None, typer.Option(help="NAME=VALUE, repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create, sign (DSSE, in-toto Statement v1) and attach an attestation about a version.

    Example: mltrail attest fraud:v5 --key ci.key --type fairness --report b.json --metric dp=0.03
    """
    private = load_private_key(key_file)
    with state(ctx).open() as reg:
        if kind == "slsa-provenance":  # built from the version's run, datasets, commit, env
            show_appended(
                reg.attest_provenance(version, private_key=private), as_json, "provenance attached"
            )
            return
        digest = reg.store.put_file(report).digest if report else None
        predicate_type, predicate = _predicate(
            kind, result, name, digest, key_values(metric, "metric"), reg.actor.id, reg.clock()
        )
        done = reg.attest(
            version, predicate_type=predicate_type, predicate=predicate, private_key=private
        )
    show_appended(done, as_json, "attestation attached")


@app.command()
def attach(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version, e.g. fraud:v5.")],
    envelope: Annotated[
        Path, typer.Argument(help="DSSE envelope JSON made elsewhere.", exists=True)
    ],
    as_json: JsonOpt = False,
) -> None:
    """Attach a DSSE envelope made elsewhere, or a Sigstore bundle from OpenSSF model_signing;
    it must verify with a registered key and be about this version.

    Example: mltrail attach fraud:v5 provenance.dsse.json
    """
    with state(ctx).open() as reg:
        done = reg.attach(version, loads(envelope.read_bytes()))
    show_appended(done, as_json, "attestation attached")


@app.command()
def approve(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version, e.g. fraud:v5.")],
    to: Annotated[str, typer.Option(help="Stage the approval is for.")] = "production",
    meaning: Annotated[str, typer.Option(help="approval, review or responsibility.")] = "approval",
    comment: Annotated[str | None, typer.Option(help="Why.")] = None,
    key_file: KeyOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve a version for a stage, bound to its digest; signed with --key when given.

    Example: mltrail --actor lead.ds approve fraud:v5 --to production --key lead.key
    """
    private = load_private_key(key_file) if key_file else None
    with state(ctx).open() as reg:
        done = reg.approve(version, stage=to, meaning=meaning, comment=comment, private_key=private)
    show_appended(done, as_json, "approved")


@app.command()
def reject(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version.")],
    reason: Annotated[str, typer.Option(help="Why it is refused.")],
    to: Annotated[str, typer.Option(help="Stage.")] = "production",
    as_json: JsonOpt = False,
) -> None:
    """Record a reviewer's refusal of a version, with the reason.

    Example: mltrail reject fraud:v6 --reason "bias report missing subgroup B"
    """
    with state(ctx).open() as reg:
        done = reg.reject_version(version, stage=to, reason=reason)
    show_appended(done, as_json, "rejection recorded")


@app.command()
def promote(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Version.")],
    to: Annotated[str, typer.Option(help="staging, production or archived.")],
    override: Annotated[
        bool,
        typer.Option("--override", help="Break-glass (admin): promote despite a failing gate."),
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Required with --override.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote a version if the policy gate passes; a refusal is logged and exits 6.

    Example: mltrail promote fraud:v5 --to production
    """
    if override and not reason:
        raise InvalidInputError(
            "--override needs --reason", hint='add --reason "why this cannot wait"'
        )
    with state(ctx).open() as reg:
        done = reg.promote(version, to=to, override_reason=reason if override else None)
    show_appended(done, as_json, "promoted (override)" if override else "promoted")


@app.command()
def validate(
    ctx: typer.Context,
    dataset_id: Annotated[str, typer.Argument(help="Dataset id.")],
    check: Annotated[str, typer.Option(help="What was checked, e.g. drift or schema.")],
    result: Annotated[str, typer.Option(help="PASSED, WARNED or FAILED.")],
    detail: Annotated[list[str] | None, typer.Option(help="KEY=VALUE, repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a data validation result (a drift warning makes policies ask for manual approval).

    Example: mltrail validate DS:2024-06-01 --check drift --result WARNED --detail psi=0.31
    """
    with state(ctx).open() as reg:
        done = reg.record_validation(
            dataset_id, check=check, result=result, details=key_values(detail, "detail")
        )
    show_appended(done, as_json, "validation recorded")
