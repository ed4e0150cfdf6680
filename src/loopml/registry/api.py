"""The registry's Python API: ``log_model``, ``load_model`` and the verbs of ``loopml models``.

The CLI calls these same functions. Each takes an optional ``workspace``; without one it uses
the workspace of the active run, or of this process's tracking session (found from the current
folder).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from loopml.errors import UserInputError
from loopml.refs import Ref, RefKind, parse_ref, validate_label, validate_name
from loopml.registry.errors import FrameworkVersionWarning, RegistryError
from loopml.registry.flavors import ModelFlavor, flavor_by_name, flavor_for, installed_version
from loopml.registry.loaded import LoadedModel, ProbabilisticModel
from loopml.registry.model import (
    AliasEvent,
    DatasetInput,
    GateResult,
    Lineage,
    ModelVersion,
    RegisteredModel,
)
from loopml.registry.repository import ModelRepository, NewVersion
from loopml.registry.settings import protected_aliases
from loopml.registry.signature import OutputSpec, Signature, infer_signature

if TYPE_CHECKING:
    from loopml.store.workspace import Workspace
    from loopml.tracking.fluent import ActiveRun

__all__ = [
    "alias_history",
    "archive_version",
    "get_gate_result",
    "get_model",
    "get_version",
    "list_models",
    "list_versions",
    "load_model",
    "log_model",
    "model_ref",
    "move_alias",
    "record_gate_result",
    "remove_alias",
    "restore_version",
]


def _workspace(workspace: Workspace | None) -> Workspace:
    if workspace is not None:
        return workspace
    from loopml.tracking.fluent import active_run, session_workspace

    run = active_run()
    if run is not None:
        return run._session.workspace
    return session_workspace()


def _repository(workspace: Workspace | None) -> tuple[Workspace, ModelRepository]:
    ws = _workspace(workspace)
    return ws, ModelRepository(ws.metadata)


def model_ref(ref: str | Ref, version: str | int | None = None) -> Ref:
    """The reference ``NAME@REF``, or ``NAME`` and a separate ``VERSION`` (``3``, ``v3``, alias)."""
    if isinstance(ref, Ref):
        if version is not None:
            raise UserInputError(f"give either {ref} or a separate version, not both")
        return ref
    if version is not None:
        if "@" in ref:
            raise UserInputError(
                f"give either {ref} or {ref.partition('@')[0]} {version}, not both"
            )
        return parse_ref(f"{ref}@{version}")
    return parse_ref(ref, default=RefKind.LATEST)


# -- logging and loading -----------------------------------------------------------------------


def _run_inputs(run: ActiveRun) -> list[DatasetInput]:
    """Dataset versions the run has read so far (in memory) or recorded (in the database)."""
    from sqlalchemy import select

    from loopml.store.metadata.schema import run_inputs, runs

    with run._lock:
        found = {(i.dataset, i.version): i.hash for i in run._inputs.values()}
    with run._session.workspace.metadata.read() as conn:
        # A model logged inside a pipeline step was trained on what the pipeline read: walk up
        # from the step's run through its parents (a bounded walk: runs nest a few levels).
        run_id: str | None = run.id
        for _depth in range(16):
            if run_id is None:
                break
            for row in conn.execute(select(run_inputs).where(run_inputs.c.run_id == run_id)):
                found.setdefault((row.dataset, row.version), row.hash)
            run_id = conn.execute(
                select(runs.c.parent_run_id).where(runs.c.id == run_id)
            ).scalar_one_or_none()
    return [DatasetInput(name, number, digest) for (name, number), digest in sorted(found.items())]


def _output_spec(model: Any, signature: Signature, example: Any, name: str) -> OutputSpec:
    """Predict on a few example rows, through the signature, as ``load_model`` will."""
    import numpy as np

    if hasattr(example, "iloc"):
        sample = example.iloc[:5]
        if signature.named and hasattr(sample, "columns"):
            sample = sample[signature.names]  # columns the model does not take stay out
    else:
        sample = example[:5]
    prepared = signature.check(sample, what=f"{name} (its X_example)")
    try:
        predictions = model.predict(prepared)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise RegistryError(
            f"the model cannot predict on X_example ({type(exc).__name__}: {first}); pass "
            "rows of the data it was trained on"
        ) from exc
    classes = getattr(model, "classes_", None)
    return OutputSpec(
        dtype=str(np.asarray(predictions).dtype),
        classes=tuple(np.asarray(classes).tolist()) if classes is not None else None,
    )


def log_model(
    model: Any,
    name: str,
    *,
    X_example: Any = None,  # noqa: N803 - the name users know from scikit-learn
    description: str | None = None,
    flavor: ModelFlavor | None = None,
) -> ModelVersion:
    """Store ``model`` as the next version of ``name``, linked to the active run.

    ``X_example`` (training rows, a DataFrame or 2-D array) gives the signature: columns,
    dtypes, nullability, categorical levels and observed ranges. The flavour is chosen by the
    model's type (skops for scikit-learn; XGBoost's JSON and LightGBM's text model
    formats for theirs, never pickle) unless given. The version is
    linked to the run and to the dataset versions the run read.
    """
    from loopml.tracking.errors import NoActiveRunError
    from loopml.tracking.fluent import active_run

    validate_name(name, "model name")
    run = active_run()
    if run is None:
        raise NoActiveRunError(
            "log_model needs an active run; wrap the training in `with loopml.start_run():`"
        )
    workspace = run._session.workspace
    chosen = flavor if flavor is not None else flavor_for(model)
    signature: Signature | None = None
    if X_example is not None:
        signature = infer_signature(X_example, model)
        signature = signature.with_output(_output_spec(model, signature, X_example, name))
    saved = chosen.save(model, workspace.objects)
    framework, framework_version = chosen.framework(model)
    new = NewVersion(
        digest=saved.digest,
        size=saved.size,
        flavor=chosen.name,
        flavor_options=dict(saved.options),
        framework=framework,
        framework_version=framework_version,
        model_class=f"{type(model).__module__}.{type(model).__qualname__}",
        signature=signature,
        run_id=run.id,
        description=description,
        user=workspace.settings.user,
        inputs=_run_inputs(run),
    )
    return ModelRepository(workspace.metadata).add_version(name, new)


def load_model(
    ref: str | Ref, version: str | int | None = None, *, workspace: Workspace | None = None
) -> LoadedModel:
    """The model ``ref`` names (``churn@champion``, ``churn@3``, ``churn@v3``, ``churn``).

    The result has ``predict`` (and ``predict_proba`` where the model has it), checking input
    against the signature first, plus ``signature``, ``version`` and ``lineage``.
    """
    ws, repository = _repository(workspace)
    found = repository.resolve(model_ref(ref, version))
    flavor = flavor_by_name(found.flavor)
    installed = installed_version(found.framework)
    if installed not in ("unknown", found.framework_version):
        warnings.warn(
            FrameworkVersionWarning(
                f"{found.label} was saved with {found.framework} {found.framework_version} and "
                f"is loaded with {installed}; predictions may differ"
            ),
            stacklevel=2,
        )
    model = flavor.load(found.digest, ws.objects, found.flavor_options)
    lineage = Lineage(found.id, found.run_id, repository.inputs(found.id), found.digest)
    kind = ProbabilisticModel if hasattr(model, "predict_proba") else LoadedModel
    return kind(model, found, lineage)


# -- the verbs of `loopml models` ---------------------------------------------------------------


def list_models(*, workspace: Workspace | None = None) -> list[RegisteredModel]:
    """Every registered model with a summary (``models ls``)."""
    return _repository(workspace)[1].list_models()


def get_model(name: str, *, workspace: Workspace | None = None) -> RegisteredModel:
    """One registered model with a summary."""
    return _repository(workspace)[1].get_model(validate_name(name, "model name"))


def list_versions(name: str, *, workspace: Workspace | None = None) -> list[ModelVersion]:
    """Every version of ``name``, oldest first (``models versions``)."""
    return _repository(workspace)[1].versions(validate_name(name, "model name"))


def get_version(
    ref: str | Ref, version: str | int | None = None, *, workspace: Workspace | None = None
) -> ModelVersion:
    """The version a reference names (``models show``); the latest for a bare name."""
    return _repository(workspace)[1].resolve(model_ref(ref, version))


def _reason(reason: str, what: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise UserInputError(f'give a reason for {what} (--reason "…"); it is kept in the history')
    return text


def move_alias(
    name: str,
    version: int | str,
    alias: str,
    *,
    reason: str,
    user: str | None = None,
    expected_current: int | None,
    gate_result_id: str | None = None,
    force: bool = False,
    workspace: Workspace | None = None,
) -> AliasEvent | None:
    """Point ``alias`` of ``name`` at ``version``, compare-and-swap (``models alias``).

    ``expected_current`` is the version the caller saw the alias point to (``None``: unset);
    if it has moved since, :class:`AliasConflictError` is raised and nothing changes. A
    protected alias (``champion`` by default) moves only with ``gate_result_id`` of a passed
    gate for this version, or with ``force``. Returns the event, or ``None`` if the alias
    already pointed there.
    """
    ws, repository = _repository(workspace)
    validate_name(name, "model name")
    validate_label(alias, "alias")
    target = repository.resolve(model_ref(name, version))
    protected = alias in protected_aliases(ws)
    if protected and gate_result_id is not None:
        _check_configured_gate(ws, name, alias, gate_result_id)
    return repository.move_alias(
        name,
        target.number,
        alias,
        reason=_reason(reason, f"moving {name}@{alias}"),
        user=user or ws.settings.user,
        expected_current=expected_current,
        protected=protected,
        gate_result_id=gate_result_id,
        force=force,
    )


def _check_configured_gate(ws: Workspace, name: str, alias: str, gate_result_id: str) -> None:
    """A protected alias of a model with a configured gate file moves only on that gate."""
    from loopml.registry.errors import ProtectedAliasError
    from loopml.registry.gates import GateResults
    from loopml.registry.settings import model_defaults
    from loopml.store.hashing import hash_file

    configured = model_defaults(ws, name).gate
    if configured is None:
        return
    try:
        expected = hash_file(configured)
    except OSError:
        raise ProtectedAliasError(
            f"{configured} (the gate of {name} in loopml.toml) cannot be read; restore it"
        ) from None
    if GateResults(ws.metadata).get(gate_result_id).gate_file_hash != expected:
        raise ProtectedAliasError(
            f"{name}@{alias} moves only on the gate loopml.toml names for {name} "
            f"({configured.name}) as it is now; run that gate, or use --force --reason"
        )


def remove_alias(
    name: str,
    alias: str,
    *,
    reason: str,
    user: str | None = None,
    expected_current: int | None,
    force: bool = False,
    workspace: Workspace | None = None,
) -> AliasEvent | None:
    """Remove ``alias`` from ``name`` (an event like a move, to no version)."""
    ws, repository = _repository(workspace)
    validate_name(name, "model name")
    validate_label(alias, "alias")
    return repository.move_alias(
        name,
        None,
        alias,
        reason=_reason(reason, f"removing {name}@{alias}"),
        user=user or ws.settings.user,
        expected_current=expected_current,
        protected=alias in protected_aliases(ws),
        force=force,
    )


def alias_history(
    name: str, alias: str | None = None, *, workspace: Workspace | None = None
) -> list[AliasEvent]:
    """Every alias move of ``name``, oldest first (``models history``)."""
    return _repository(workspace)[1].alias_events(validate_name(name, "model name"), alias)


def archive_version(
    ref: str | Ref, version: str | int | None = None, *, workspace: Workspace | None = None
) -> ModelVersion:
    """Archive a version: kept (and kept by gc), but no longer ``latest`` nor aliasable."""
    parsed = model_ref(ref, version)
    if not parsed.explicit:
        raise UserInputError(f"name the version to archive, e.g. {parsed.name}@v1")
    _, repository = _repository(workspace)
    found = repository.resolve(parsed)
    return repository.set_archived(found.model, found.number, True)


def restore_version(
    ref: str | Ref, version: str | int | None = None, *, workspace: Workspace | None = None
) -> ModelVersion:
    """Undo :func:`archive_version`."""
    parsed = model_ref(ref, version)
    if not parsed.explicit:
        raise UserInputError(f"name the version to restore, e.g. {parsed.name}@v1")
    _, repository = _repository(workspace)
    found = repository.resolve(parsed)
    return repository.set_archived(found.model, found.number, False)


def record_gate_result(
    model_version_id: str,
    *,
    gate_file_hash: str,
    data_hash: str,
    champion_version_id: str | None,
    passed: bool,
    report: str,
    user: str | None = None,
    workspace: Workspace | None = None,
) -> GateResult:
    """Record a promotion gate's verdict on a candidate version (for ``move_alias``)."""
    from loopml.registry.gates import GateResults

    ws = _workspace(workspace)
    return GateResults(ws.metadata).add(
        model_version_id=model_version_id,
        gate_file_hash=gate_file_hash,
        data_hash=data_hash,
        champion_version_id=champion_version_id,
        passed=passed,
        report=report,
        user=user or ws.settings.user,
    )


def get_gate_result(gate_result_id: str, *, workspace: Workspace | None = None) -> GateResult:
    """One recorded gate result."""
    from loopml.registry.gates import GateResults

    return GateResults(_workspace(workspace).metadata).get(gate_result_id)
