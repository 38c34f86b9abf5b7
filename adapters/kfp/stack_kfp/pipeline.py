"""A recipe as a Kubeflow pipeline: one component per step, in the recipe's dependency
order (`after`), each calling mlstack's step runner with the stack, recipe, run and step."""

# No `from __future__ import annotations`: KFP reads the components' annotations as types.

from typing import Any

from stack.config.recipe_file import Recipe


def build_pipeline(recipe: Recipe, *, stack_file: str, base_dir: str, image: str) -> Any:
    from kfp import dsl

    @dsl.component(base_image=image, install_kfp_package=False)  # the image has mlstack-kfp
    def mlstack_step(
        stack_file: str, base_dir: str, recipe: str, run_id: str, step: str, skip: str
    ) -> None:
        from stack.orchestration.remote import run_one_step

        if step in skip.split(","):  # taken over from the run being resumed
            return
        run_one_step(
            stack_file=stack_file,
            base_dir=base_dir,
            recipe=recipe,
            run_id=run_id,
            step=step,
            orchestrator="kfp",
        )

    @dsl.component(base_image=image, install_kfp_package=False)
    def mlstack_start(stack_file: str, base_dir: str, recipe: str, run_id: str) -> str:
        from stack.orchestration.remote import start_run

        return start_run(
            stack_file=stack_file,
            base_dir=base_dir,
            recipe=recipe,
            run_id=run_id,
            orchestrator="kfp",
        )

    @dsl.component(base_image=image, install_kfp_package=False)
    def mlstack_finish(stack_file: str, base_dir: str, recipe: str, run_id: str) -> None:
        from stack.orchestration.remote import finish_run

        finish_run(
            stack_file=stack_file,
            base_dir=base_dir,
            recipe=recipe,
            run_id=run_id,
            orchestrator="kfp",
        )

    @dsl.pipeline(name=_name(recipe.name), description=recipe.spec.description or recipe.name)
    def pipeline(run_id: str = "", skip: str = "") -> None:
        where = {"stack_file": stack_file, "base_dir": base_dir, "recipe": str(recipe.path)}
        start = mlstack_start(run_id=run_id, **where)
        start.set_display_name("start")
        start.set_caching_options(False)
        tasks: dict[str, Any] = {}
        for name in recipe.order():
            task = mlstack_step(run_id=start.output, step=name, skip=skip, **where)
            task.set_display_name(name)
            task.set_caching_options(False)  # mlstack decides what is reused (resume)
            for need in recipe.step(name).needs:
                task.after(tasks[need])
            tasks[name] = task
        finish = mlstack_finish(run_id=start.output, **where).after(*tasks.values())
        finish.set_display_name("finish")
        finish.set_caching_options(False)

    return pipeline


def _name(recipe: str) -> str:
    """KFP pipeline names: lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in recipe.lower()).strip("-") or "recipe"
