"""The files a user writes: stack.yaml and recipe.yaml, validated whole before anything runs."""
