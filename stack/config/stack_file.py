"""stack.yaml: one adapter per role, its options, and where the spine store lives."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stack.config.diagnostics import Checked, checked, collect
from stack.config.observability import AlertRouting, CostTable
from stack.config.spine_url import form_problem
from stack.config.yaml_source import YamlDocument, load_yaml
from stack.contract.roles import Role
from stack.errors import StackConfigError

_FROZEN = ConfigDict(frozen=True, extra="forbid")

DEFAULT_STACK = Path(__file__).resolve().parent.parent / "defaults" / "local.yaml"
#: `server: none` in a stack file: this stack has no server (not even the embedded one).
NO_ROLE = "none"


class RoleSection(BaseModel):
    """`{adapter: NAME, ...options}`: the options are validated by the adapter's own model."""

    model_config = _FROZEN

    adapter: str = Field(min_length=1)
    # Unvalidated until the adapter's model checks it, and may hold secrets: never shown raw.
    options: dict[str, Any] = Field(default_factory=dict, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _split_options(cls, data: Any) -> Any:
        if isinstance(data, str):  # `orchestrator: local` is shorthand for {adapter: local}
            return {"adapter": data}
        if isinstance(data, dict) and "options" not in data:
            rest = {k: v for k, v in data.items() if k != "adapter"}
            return {"adapter": data.get("adapter"), "options": rest}
        return data


class SpineSection(BaseModel):
    """Where lineage, approvals and the audit log live: SQLite by default, PostgreSQL in prod.

    Put the password in `password` (from ${ENV}) rather than in the URL: it is then kept as a
    secret, never shown by `mlstack stack show` or in logs.
    """

    model_config = _FROZEN

    url: str = Field(default="sqlite:///.mlstack/spine.db", repr=False)
    password: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _known_form(cls, url: str) -> str:
        problem = form_problem(url)
        if problem is not None:
            raise ValueError(problem)
        return url

    @model_validator(mode="after")
    def _password_needs_a_server(self) -> SpineSection:
        if self.password is not None and self.url.startswith("sqlite"):
            raise ValueError(
                "password: a SQLite spine is a file and takes no password (it is for a "
                "PostgreSQL spine); remove it"
            )
        return self

    @property
    def safe_url(self) -> str:
        """The URL with any password replaced by ***, fit to print."""
        return masked_url(self.url, password=self.password is not None)

    def connect_url(self) -> str:
        """The URL to connect with, the secret password filled in, percent-encoded (a
        password with `@`, `/` or `:` in it would otherwise be read as part of the host)."""
        if self.password is None:
            return self.url
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        user = parts.netloc.rpartition("@")[0].partition(":")[0]  # as written: encoded
        secret = quote(self.password.get_secret_value(), safe="")
        return urlunsplit(parts._replace(netloc=f"{user}:{secret}@{host}"))


class ProxyIdentity(BaseModel):
    """Who signs in to the web console (`mlstack ui`) behind an authenticating proxy
    (oauth2-proxy and similar): with `trust: true` the user comes from the proxy's headers.
    Only set it when every request reaches the console through that proxy: anyone who can
    reach the console directly could send the headers themselves."""

    model_config = _FROZEN

    trust: bool = Field(default=False, description="Take the user from the proxy's headers.")
    user_header: str = Field(default="X-Forwarded-User", min_length=1)
    email_header: str = Field(
        default="X-Forwarded-Email", min_length=1, description="Used when no user is sent."
    )
    groups_header: str = Field(
        default="X-Forwarded-Groups",
        min_length=1,
        description="Comma-separated groups, shown in the console; approvals count the "
        "stack file's `groups`, as gates do.",
    )
    hosts: tuple[str, ...] = Field(
        default=(),
        description="Host headers (`console.example.com` or `host:port`) the proxy forwards "
        "requests with; the console refuses any other Host than its own loopback address.",
    )
    addresses: tuple[str, ...] = Field(
        default=(),
        description="The proxy's own IP addresses (as the console sees its connections, "
        "e.g. `127.0.0.1`): only from these, and only with `trust: true`, does the console "
        "believe X-Forwarded-For and X-Forwarded-Proto; from anyone else they are ignored.",
    )


class IdentitySection(BaseModel):
    """Groups of people, named by the promotion policies of recipes (e.g. `ml-leads`)."""

    model_config = _FROZEN

    groups: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    token_secret: SecretStr | None = Field(
        default=None, description="Checks MLSTACK_TOKEN signatures (CI identities)."
    )
    proxy: ProxyIdentity = ProxyIdentity()


class OpenLineageSection(BaseModel):
    """Where `mlstack lineage --openlineage` sends events: a file under home by default, or
    an OpenLineage HTTP endpoint (Marquez, …)."""

    model_config = _FROZEN

    namespace: str = "mlstack"
    file: str = "openlineage.jsonl"
    url: str | None = None
    api_key: SecretStr | None = None


class JudgeSection(BaseModel):
    """An OpenAI-compatible endpoint that LLM-as-judge scorers ask (`/v1/chat/completions`).
    Put the key in `api_key` from ${ENV}: it is kept as a secret."""

    model_config = _FROZEN

    base_url: str = Field(pattern=r"^https?://")
    model: str = Field(min_length=1)
    api_key: SecretStr | None = None
    timeout_seconds: float = Field(default=60, gt=0)


class StackFile(BaseModel):
    model_config = _FROZEN

    name: str = Field(min_length=1)
    home: str = ".mlstack"
    tracker: RoleSection | None = None
    registry: RoleSection | None = None
    features: RoleSection | None = None
    orchestrator: RoleSection = RoleSection(adapter="local")
    server: RoleSection | None = None
    monitor: RoleSection | None = None
    spine: SpineSection = SpineSection()
    identity: IdentitySection = IdentitySection()
    openlineage: OpenLineageSection = OpenLineageSection()
    judge: JudgeSection | None = None
    alerts: AlertRouting = AlertRouting()
    cost: CostTable = CostTable()

    @field_validator(*(role.value for role in Role), mode="before")
    @classmethod
    def _none_means_no_role(cls, value: Any, info: ValidationInfo) -> Any:
        role = info.field_name
        if role == Role.ORCHESTRATOR.value and value in (None, NO_ROLE):
            raise ValueError("every stack needs an orchestrator; `local` runs steps here")
        if value is None:
            raise ValueError(
                f"empty; write `{role}: none` for a stack without a {role}, "
                f"or `{role}: {{adapter: ...}}`"
            )
        return None if value == NO_ROLE else value

    def section(self, role: Role) -> RoleSection | None:
        section: RoleSection | None = getattr(self, role.value)
        return section

    def configured_roles(self) -> dict[Role, RoleSection]:
        return {role: s for role in Role if (s := self.section(role)) is not None}


def read_stack_file(path: Path | None = None) -> tuple[StackFile, YamlDocument]:
    """Parse and validate a stack file's shape (adapter options are checked by the session).

    A role the file does not name is taken from the embedded local stack (`DEFAULT_STACK`);
    `ROLE: none` leaves it out. The document returned knows which roles were taken
    (`embedded_roles`), and places a problem in one of them at its line in the embedded file.
    """
    result, doc = check_stack_file(path)
    if result.problems or result.value is None:
        raise collect(doc, result.problems)
    return result.value, doc


def check_stack_file(path: Path | None = None) -> tuple[Checked[StackFile], YamlDocument]:
    """`read_stack_file` without raising on a problem of the file's shape: every problem,
    and the stack with the fields that had them at their defaults (see
    `stack.config.diagnostics.checked`) for the adapter checks to run on. A file that is
    missing, not YAML or not a mapping still raises StackConfigError."""
    doc = load_yaml(path or DEFAULT_STACK)
    if not isinstance(doc.data, dict):
        raise StackConfigError(f"{doc.where(())}: a stack file is a mapping of roles to adapters")
    if path is not None and path.resolve() != DEFAULT_STACK:
        doc = doc.with_defaults(load_yaml(DEFAULT_STACK), [role.value for role in Role])
    return checked(doc, StackFile, doc.data, stand_ins={"name": "stack"}), doc


def embedded_roles(doc: YamlDocument) -> tuple[Role, ...]:
    """The roles of a stack file `read_stack_file` took from the embedded local stack."""
    return tuple(role for role in Role if role.value in doc.borrowed)


def masked_url(url: str, *, password: bool = False) -> str:
    """`url` fit to print: a password in it, or one given apart (`password`), shown as ***
    (`postgresql://ana:***@db/mlstack`)."""
    parts = urlsplit(url)
    if parts.password is None and not password:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{netloc}"))
