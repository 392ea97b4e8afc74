"""How a training run ends when it does not succeed."""


class ConfigError(ValueError):
    """Bad input (model, dataset, values): exit 2 with a message naming the fix."""


class TrainingFailed(RuntimeError):
    """The run started but cannot go on (NaN loss, out of memory): exit 1."""


class TrainingStopped(Exception):
    """SIGINT / SIGTERM: weights and state were saved; exit 130 / 143."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
