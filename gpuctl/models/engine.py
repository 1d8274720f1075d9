"""What to run on a GPU host: one inference-engine container, described without any secret value."""

from __future__ import annotations

import shlex

from pydantic import BaseModel, ConfigDict, Field

from gpuctl.models.recipe import EngineName, QuantMethod

#: where gpuctl keeps model weights on a host (created by templates/bootstrap.sh)
HOST_CACHE_DIR = "/var/lib/gpuctl/hf-cache"
#: the env-file (mode 0600) holding the secret values; written on the host at launch, never logged
HOST_ENV_FILE = "/etc/gpuctl/engine.env"
CONTAINER_NAME = "gpuctl-engine"
#: host port the engine is published on (loopback unless public)
HOST_PORT = 8000


def container_name(deployment: str) -> str:
    """The engine container of ``deployment`` (one host can serve several deployments)."""
    return f"gpuctl-{deployment}"


class EngineOptions(BaseModel):
    """The user's serving choices (flags of ``gpuctl up``); None means the engine's or recipe's default."""

    model_config = ConfigDict(extra="forbid")

    engine: EngineName = "vllm"
    gpu_count: int = Field(default=1, ge=1, description="GPUs of the instance; all are used (tensor parallel)")
    max_model_len: int | None = Field(default=None, ge=1)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    quantization: QuantMethod | None = None
    served_model_name: str | None = None
    public: bool = False
    api_key: bool = Field(default=False, description="whether the endpoint gets an API key (its value is elsewhere)")
    hf_token: bool = Field(default=False, description="whether HF_TOKEN is passed to the container")


class EngineSpec(BaseModel):
    """One container: image, command line, environment (names of secrets only), port and health check."""

    engine: EngineName
    image: str = Field(description="image with a pinned tag")
    cuda_version: str | None = Field(default=None, description="CUDA version (major.minor) the image is built "
                                                               "on, which the host's driver must run; None: unknown")
    entrypoint: list[str] | None = Field(default=None, description="overrides the image's entrypoint")
    args: list[str]
    env: dict[str, str] = Field(default_factory=dict, description="non-secret environment")
    secret_env: list[str] = Field(default_factory=list,
                                  description="names of secret variables, given to the engine's environment at launch")
    secret_flags: dict[str, str] = Field(
        default_factory=dict,
        description="flag -> secret name, for a secret the engine takes only as a flag (SGLang's --api-key); "
                    "the entrypoint must then be 'python3 -m MODULE', so it is passed inside the process")
    port: int = Field(description="port the engine listens on inside the container")
    health_path: str
    shm_size: str
    gpus: int = Field(description="GPUs requested for the container (all of the instance's)")
    cache_mount: str = Field(description="container path of the Hugging Face cache")
    public: bool
    supports_api_key: bool
    api_key_env: str | None = Field(default=None, description="the variable carrying the API key, when one is set")
    served_model_name: str
    max_model_len: int
    tensor_parallel_size: int
    quantization: str | None = None
    gpu_memory_utilization: float
    safetensors_only: bool = Field(description="whether the engine refuses pickled (.bin) weights")

    model_config = ConfigDict(extra="forbid")

    @property
    def bind_address(self) -> str:
        """Host address the port is published on: all interfaces only for a public endpoint."""
        return "0.0.0.0" if self.public else "127.0.0.1"

    def docker_run_argv(self, *, name: str = CONTAINER_NAME, cache_dir: str = HOST_CACHE_DIR,
                        env_file: str = HOST_ENV_FILE, host_port: int = HOST_PORT) -> list[str]:
        """The ``docker run`` command line for this spec; secret values stay in ``env_file``."""
        argv = ["docker", "run", "--detach", "--name", name, "--gpus", "all", "--shm-size", self.shm_size,
                "--publish", f"{self.bind_address}:{host_port}:{self.port}",
                "--volume", f"{cache_dir}:{self.cache_mount}"]
        if self.secret_env:
            argv += ["--env-file", env_file]
        for key, value in self.env.items():
            argv += ["--env", f"{key}={value}"]
        if self.entrypoint:
            argv += ["--entrypoint", self.entrypoint[0]]
        argv.append(self.image)
        return argv + self.entrypoint[1:] + self.args if self.entrypoint else argv + self.args

    def command_line(self, **kwargs: object) -> str:
        """``docker_run_argv`` as one shell-quoted line."""
        return shlex.join(self.docker_run_argv(**kwargs))  # type: ignore[arg-type]
