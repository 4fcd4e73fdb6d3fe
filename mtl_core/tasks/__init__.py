"""Tasks as data: the built-in task definitions (name, labels, colours, groups, metric), out-of-scope
detection, few-shot tasks from a user's examples, and the checkpoint that stores a model with its tasks."""
