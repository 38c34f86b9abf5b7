"""StackSession: a validated stack, its spine store and hooks, and its roles built on demand.

Opening a session validates everything (stack file, adapters, options, the recipe's needs)
before any role is built, so a bad stack fails before it touches anything. A role's adapter,
and so its wrapped tool, is imported the first time the role is used.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from stack.config.home import create_home
from stack.config.stack_file import StackFile, read_stack_file
from stack.contract.roles import ROLE_PROTOCOLS, Role
from stack.errors import StackError, Vetoed
from stack.hooks.bus import HookBus
from stack.plugins.manifest import AdapterContext
from stack.plugins.registry import AdapterRegistry, default_registry
from stack.resolution import ResolvedRole, resolve_stack

if TYPE_CHECKING:
    from stack.config.recipe_file import Recipe
    from stack.contract import FeatureStore, Monitor, Orchestrator, Registry, Server, Tracker
    from stack.contract.registry import ModelVersion
    from stack.spine.store import SpineStore

#: The tag a version is registered with: the path of the recipe.yaml that built it.
RECIPE_TAG = "mlstack.recipe"
#: The tag beside it: the policy digest of that recipe when it built the version.
POLICY_TAG = "mlstack.recipe.policy"
#: Who owns a model, and its risk tier: set from its recipe when a version is registered.
OWNER_TAG = "mlstack.owner"
RISK_TAG = "mlstack.risk_tier"


class StackSession:
    """An opened stack: one adapter per role (`tracker`, `registry`, `features`, `server`,
    `monitor`, `orchestrator`), the spine, the hooks, and the recipe it was opened with (its
    hooks registered once, its policy the one `recipe_for` applies). A step gets one as
    `ctx.session`; a script opens one with `StackSession.open()` and closes it (it is a
    context manager)."""

    #: The lineage kind (a `NodeKind` value) of the versions this session's registry holds:
    #: a prompt view says `prompt_version`. Plain text, so importing the session stays free
    #: of the spine's database layer.
    version_kind: str = "model_version"

    def __init__(
        self,
        stack: StackFile,
        roles: Mapping[Role, ResolvedRole],
        registry: AdapterRegistry,
        *,
        source: Path | None = None,
        base_dir: Path | None = None,
        hooks: HookBus | None = None,
        recipe: Recipe | None = None,
    ) -> None:
        self.stack = stack
        self.resolved = dict(roles)
        self.adapters = registry
        self.source = source
        self.base_dir = (base_dir or Path.cwd()).resolve()
        self.hooks = hooks if hooks is not None else HookBus()
        self._instances: dict[Role, object] = {}
        self._own_registry: Registry | None = None  # a view's registry (`with_registry`)
        self._spine: SpineStore | None = None
        self._recipes: set[str] = set()  # recipe files whose hooks are registered
        self._owner = True  # closes its roles and spine (a `with_recipe` view does not)
        self._home_ready = False  # `home` created (by the first adapter built)
        #: The recipe this session was opened with (None for a command given none).
        self.recipe: Recipe | None = None
        self._adopt(recipe)

    @classmethod
    def open(
        cls,
        path: Path | None = None,
        *,
        recipe: Recipe | None = None,
        registry: AdapterRegistry | None = None,
        base_dir: Path | None = None,
        hooks: HookBus | None = None,
    ) -> StackSession:
        """Read and resolve `path` (the embedded local stack when None), with `recipe`: the
        stack is checked against what it needs and its hooks are registered (raises
        StackConfigError naming the recipe file when one cannot be loaded)."""
        registry = registry or default_registry()
        stack, doc = read_stack_file(path)
        roles = resolve_stack(stack, doc, registry, recipe)
        return cls(
            stack, roles, registry, source=path, base_dir=base_dir, hooks=hooks, recipe=recipe
        )

    def with_recipe(self, recipe: Recipe) -> StackSession:
        """This session owning `recipe` instead (a retraining recipe, another model's): the
        same stack, spine, hooks and roles; `recipe`'s hooks registered. Closing the view
        closes nothing: the session it came from does."""
        view = copy.copy(self)
        view._spine = self.spine  # one connection for both
        view._recipes = self._recipes  # one hook bus: one record of what it holds
        view._owner = False
        view.recipe = None
        view._adopt(recipe)
        return view

    def with_registry(self, registry: Registry, version_kind: str) -> StackSession:
        """This session seeing `registry` as its registry, whose versions are lineage nodes
        of kind `version_kind` (a `NodeKind` value): the prompt store's view, so that
        governance, the lifecycle and cards act on prompt versions exactly as on model
        versions. The same stack, spine, hooks, recipe and other roles; closing the view
        closes nothing: the session it came from does."""
        view = copy.copy(self)
        view._spine = self.spine  # one connection for both
        view._owner = False
        view._own_registry = registry
        view.version_kind = version_kind
        return view

    def for_recipe(self, recipe: Recipe | None, caller: str) -> StackSession:
        """This session for code written before sessions owned their recipe
        (`Governance(session, recipe)`): the session itself when `recipe` is None or its own,
        else a view owning `recipe` (`with_recipe`). Warns (DeprecationWarning) whenever a
        recipe is passed: open the session with it instead."""
        if recipe is None:
            return self
        import warnings

        warnings.warn(
            f"{caller}(session, recipe) is deprecated: the session owns its recipe "
            "(StackSession.open(path, recipe=...); in a step, ctx.session already does); "
            f"call {caller}(session)",
            DeprecationWarning,
            stacklevel=3,
        )
        own = self.recipe
        if own is not None and (recipe is own or recipe.path == own.path):
            return self
        return self.with_recipe(recipe)

    @property
    def home(self) -> Path:
        """The folder for the stack's local state (`.mlstack/` by default)."""
        home = Path(self.stack.home)
        return home if home.is_absolute() else self.base_dir / home

    @property
    def spine(self) -> SpineStore:
        if self._spine is None:
            from sqlalchemy.exc import SQLAlchemyError

            from stack.spine.store import SpineStore

            try:
                url = anchored(self.stack.spine.connect_url(), self.base_dir)
                self._spine = SpineStore.open(url)
            except (SQLAlchemyError, OSError) as exc:  # every command says so, not only run
                cause = " ".join(str(getattr(exc, "orig", None) or exc).split())
                where = f"{self.source}: " if self.source else ""
                raise StackError(
                    f"{where}spine.url: cannot open the spine at {self.stack.spine.safe_url}: "
                    f"{cause[:300]}"
                ) from exc
        return self._spine

    def spine_file(self) -> Path | None:
        """The spine's SQLite file (None for a server database or an in-memory one)."""
        url = anchored(self.stack.spine.url, self.base_dir)
        prefix = "sqlite:///"
        if not url.startswith(prefix):
            return None
        path = url[len(prefix) :].partition("?")[0]
        return Path(path) if path and path != ":memory:" else None

    def adapter_context(self) -> AdapterContext:
        """Where this stack's adapters keep their files: `home`, created here (raises
        StackError naming the `home` field when it cannot be)."""
        if not self._home_ready:
            create_home(self.home, self.source)
            self._home_ready = True
        return AdapterContext(home=self.home, base_dir=self.base_dir, stack_name=self.stack.name)

    def role(self, role: Role) -> object:
        """The adapter filling `role`, built (and its tool imported) on first use."""
        if role is Role.REGISTRY and self._own_registry is not None:
            return self._own_registry
        if role not in self._instances:
            resolved = self.resolved.get(role)
            if resolved is None:
                raise StackError(
                    f"stack {self.stack.name!r} has no {role.value}; add "
                    f"`{role.value}: {{adapter: ...}}` to the stack file "
                    "(`mlstack adapters` lists what is installed)"
                )
            instance = self.adapters.create(
                role, resolved.adapter, resolved.config, self.adapter_context()
            )
            protocol = ROLE_PROTOCOLS[role]
            if not isinstance(instance, protocol):
                raise StackError(
                    f"adapter {resolved.adapter!r} does not implement the {role.value} role "
                    f"({protocol.__name__})"
                )
            self._instances[role] = instance
        return self._instances[role]

    def opened(self, role: Role) -> object | None:
        """The adapter filling `role` if it was built already, else None (builds nothing)."""
        if role is Role.REGISTRY and self._own_registry is not None:
            return self._own_registry
        return self._instances.get(role)

    def _adopt(self, recipe: Recipe | None) -> None:
        """Own `recipe`: its hooks registered (once per recipe file), its policy the one
        `recipe_for` gives for the versions it built or whose model it declares."""
        if recipe is None:
            return
        self.recipe = recipe
        self._register_hooks(recipe)

    def _register_hooks(self, recipe: Recipe) -> None:
        """Register `recipe`'s hooks (`hooks:` in recipe.yaml), once per recipe file.

        Done for the session's recipe and, by `emit`, for the recipe that built the version
        an event is about: a recipe's veto holds for every command that acts on its versions
        (promote, approve, reject, deploy, rollback, monitor), not only `mlstack run`.
        Raises StackConfigError when a hook cannot be loaded (naming the recipe file)."""
        if str(recipe.path) in self._recipes:
            return
        if recipe.spec.hooks and str(recipe.directory) not in sys.path:
            sys.path.insert(0, str(recipe.directory))  # hook modules live beside their steps
        for target in recipe.spec.hooks:
            self.hooks.register_target(target, origin=str(recipe.path))
        self._recipes.add(str(recipe.path))

    def recipe_for(self, version: ModelVersion, *, required: bool = True) -> Recipe | None:
        """The recipe whose policy (gates, rollout plan, monitoring) applies to `version`:
        the one that built it (tagged at registration with its path and policy digest, read
        once per process while its file is unchanged). The session's own recipe stands in
        when it is that file, when it declares the model of a version no recipe built, or
        when it is another file for the model with the very policy `version` was built
        under (a copy elsewhere, e.g. a CI checkout); None when none is known.

        With `required` (deciding a gate), raises StackError when `version` was built by a
        recipe that is not on disk and no copy with its policy is given (its gates cannot be
        read, and deciding without them would let it through unchecked), when the session's
        recipe declares the model with another policy (a weakened copy would otherwise pass
        its own gate), and when it neither built `version` nor declares its model. Without
        it, the builder's recipe is answered where the session's does not stand in, and the
        answer may be None."""
        location = version.tags.get(RECIPE_TAG)
        builder = _recipe_at(Path(location)) if location else None
        own = self.recipe
        if own is not None:
            declared = own.spec.model.name if own.spec.model else None
            if location == str(own.path) or (not location and declared == version.model):
                return own
            if declared == version.model:  # another file for this model: only the same policy
                built_under = version.tags.get(POLICY_TAG) or (
                    builder.policy_digest if builder else None
                )
                if own.policy_digest == built_under:
                    return own
                if required:
                    raise StackError(
                        f"{own.path}'s policy (promotion, rollout, monitoring) is not the one "
                        f"that built {version.ref} ({location}, "
                        f"{built_under or 'policy unknown'}): a version is judged by the policy "
                        "it was built under. Give that recipe (or none), or build a new version "
                        "with this one"
                    )
                return builder or own
            if required:
                raise StackError(
                    f"{own.path} did not build {version.ref} and declares "
                    + (f"model {declared!r}" if declared else "no model")
                    + f": its promotion policy is not {version.model}'s. Give the recipe that "
                    f"built it ({location or 'none recorded'}) or one declaring model "
                    f"{version.model!r}"
                )
        if not location:
            return None
        if builder is None and required:
            raise StackError(
                f"{version.ref} was built by the recipe {location}, which is not on disk: its "
                "promotion policy cannot be read, so nothing is decided. Run where that recipe "
                "is, or give a copy with the same policy with --recipe PATH"
            )
        return builder

    def _hooks_of(self, version: object, event: str) -> None:
        """Register the hooks of the recipe that built `version` before `event` is fired."""
        from stack.contract.registry import ModelVersion
        from stack.hooks.specs import VETOABLE_EVENTS

        if not isinstance(version, ModelVersion):
            return
        location = version.tags.get(RECIPE_TAG)
        if not location or location in self._recipes:
            return
        recipe = _recipe_at(Path(location))
        # its veto cannot be asked (unless the command was given a recipe to ask)
        if recipe is None and event in VETOABLE_EVENTS and not self._recipes:
            raise StackError(
                f"{version.ref} was built by the recipe {location}, which is not on "
                f"disk: its hooks cannot be asked ({event}), so nothing is done. Run "
                "where that recipe is, or give it with --recipe PATH"
            )
        if recipe is not None:
            self._register_hooks(recipe)

    def emit(self, event: str, *, subject: str, **arguments: Any) -> list[Any]:
        """Fire a lifecycle event to every hook and record it in the spine.

        An event about a version (a `version` argument) is first offered to the hooks of the
        recipe that built it (see `_register_hooks`). A vetoed event is recorded too, with the
        reasons, before Vetoed propagates.
        """
        self._hooks_of(arguments.get("version"), event)
        try:
            results = self.hooks.fire(event, **arguments)
        except Vetoed as exc:
            self.spine.record_event(event, subject, {**arguments, "vetoed": exc.reasons})
            raise
        self.spine.record_event(event, subject, arguments)
        return results

    def has(self, role: Role) -> bool:
        return role in self.resolved

    @property
    def tracker(self) -> Tracker:
        return cast("Tracker", self.role(Role.TRACKER))

    @property
    def registry(self) -> Registry:
        return cast("Registry", self.role(Role.REGISTRY))

    @property
    def features(self) -> FeatureStore:
        return cast("FeatureStore", self.role(Role.FEATURES))

    @property
    def orchestrator(self) -> Orchestrator:
        return cast("Orchestrator", self.role(Role.ORCHESTRATOR))

    @property
    def server(self) -> Server:
        return cast("Server", self.role(Role.SERVER))

    @property
    def monitor(self) -> Monitor:
        return cast("Monitor", self.role(Role.MONITOR))

    def close(self) -> None:
        if not self._owner:
            return
        for instance in self._instances.values():
            closer: Any = getattr(instance, "close", None)
            if callable(closer):
                closer()
        if self._spine is not None:
            self._spine.close()

    def __enter__(self) -> StackSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def anchored(url: str, base_dir: Path) -> str:
    """A SQLite URL with a relative path, made relative to the stack's folder rather than to
    wherever the process happens to run (`sqlite:///.mlstack/spine.db` is `./.mlstack/…`)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url.startswith(prefix + "/"):
        return url
    path, _, query = url[len(prefix) :].partition("?")
    if not path or path == ":memory:":
        return url
    return f"{prefix}{(base_dir / path).resolve()}" + (f"?{query}" if query else "")


_READ: dict[tuple[str, int, int], Recipe] = {}  # (file, mtime_ns, size): read once per process


def _recipe_at(location: Path) -> Recipe | None:
    """The recipe at `location` (a recipe.yaml), read once per process while the file is
    unchanged; None when it is not on disk."""
    try:
        stat = location.stat()
    except OSError:
        return None
    if not location.is_file():
        return None
    key = (str(location), stat.st_mtime_ns, stat.st_size)
    if key not in _READ:
        from stack.config.recipe_file import load_recipe  # the recipe models: not on a read path

        _READ[key] = load_recipe(location)
    return _READ[key]
