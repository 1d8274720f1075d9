"""The bad inputs: argv, files and environment -> the documented exit code and the error line's pattern.

Codes (docs/exit-codes.md): 2 bad input or usage, 3 not found, 4 provider/API, 5 no capacity or no
matching offer, 6 credentials, 7 timeout, 8 health. A case still wrong names what fixes it
(``xfail=``); when that lands, its strict xfail fails until the mark is removed.
"""

from __future__ import annotations

from tests.badinput.case import (
    DIR,
    Case,
    case,
)

MODEL = "qwen2.5-7b"  # not gated: nothing here needs HF_TOKEN
USAGE = r"\(hint: see 'gpuctl"
GARBAGE = bytes(range(256)) * 4  # a binary file where text is expected
PROJECT_YAML = "gpuctl.yaml"
STATE = ".gpuctl/state.json"
CONFIG = "config:config.yaml"
RUNNING = {"one": {}}  # one deployment record, status running at RunPod

ROOT = [
    case("root-unknown-command", "nosuch", 2, r"no such command 'nosuch'.*" + USAGE),
    case("root-unknown-option", "--nosuch status", 2, r"No such option '--nosuch'"),
    case("root-project-dir-missing", "--project-dir nowhere status", 2, r"nowhere"),
    case("root-project-dir-a-file", "--project-dir afile status", 2, r"afile", files={"afile": "x"}),
    case("root-project-dir-env-missing", "status", 2, r"nowhere", env={"GPUCTL_PROJECT_DIR": "nowhere"}),
    case("root-interactive-flag-value", "--interactive=maybe status", 2, r"interactive"),
]

PRICES = [
    case("prices-unknown-option", "prices --nosuch", 2, r"No such option '--nosuch'"),
    case("prices-gpu-missing-value", "prices --gpu", 2, r"--gpu.* requires an argument"),
    case("prices-unknown-gpu", "prices --gpu nosuchgpu", 2, r"nosuchgpu"),
    case("prices-unknown-provider", "prices --provider nosuch", 2, r"nosuch"),
    case("prices-count-zero", "prices --count 0", 2, r"--count"),
    case("prices-count-not-a-number", "prices --count abc", 2, r"'abc' is not a valid integer"),
    case("prices-min-vram-negative", "prices --min-vram -1", 2, r"--min-vram"),
    case("prices-max-price-negative", "prices --max-price -1", 2, r"--max-price"),
    case("prices-max-price-not-a-number", "prices --max-price cheap", 2, r"'cheap' is not a valid float"),
    case("prices-unknown-sort", "prices --sort cost", 2, r"'cost' is not one of"),
    case("prices-limit-zero", "prices --limit 0", 2, r"--limit"),
    case("prices-max-age-word", "prices --max-age forever", 2, r"forever"),
    case("prices-timeout-negative", "prices --timeout -5", 2, r"-5"),
    case("prices-timeout-word", "prices --timeout soon", 2, r"soon"),
    case("prices-for-unknown-model", "prices --for nosuchmodel", 3, r"nosuchmodel"),
    case("prices-for-bad-hf-id", "prices --for hf:nope", 2, r"hf:nope"),
    case("prices-extra-argument", "prices l40s", 2, r"unexpected extra argument"),
    case("prices-broken-config-file", "prices", 2, r"config\.yaml", files={CONFIG: "prices: [\n"}),
    case("prices-config-timeout-word", "prices", 2, r"prices\.timeout", files={CONFIG: "prices.timeout: soon\n"}),
]

MODELS = [
    case("models-unknown", "models show nosuch", 3, r"nosuch"),
    case("models-bad-hf-id", "models show hf:", 2, r"hf:"),
    case("models-unknown-option", "models --nosuch", 2, r"No such option"),
    case("models-broken-project-recipe", "models show broken", 2, r"broken\.yaml",
         files={"recipes/broken.yaml": "name: broken\nrepo: [\n"}),
    case("models-project-recipe-missing-fields", "models show thin", 2, r"thin\.yaml",
         files={"recipes/thin.yaml": "name: thin\nrepo: org/thin\n"}),
    case("models-project-recipe-binary", "models show bin", 2, r"bin\.yaml", files={"recipes/bin.yaml": GARBAGE}),
    case("models-project-recipe-a-directory", "models show dir", 2, r"dir\.yaml", files={"recipes/dir.yaml": DIR}),
]

FIT = [
    case("fit-no-model", "fit", 2, r"Missing argument 'MODEL'"),
    case("fit-unknown-model", "fit nosuch", 3, r"nosuch"),
    case("fit-context-zero", f"fit {MODEL} --context 0", 2, r"--context"),
    case("fit-context-word", f"fit {MODEL} --context long", 2, r"long"),
    case("fit-unknown-gpu", f"fit {MODEL} --gpu nosuchgpu", 2, r"nosuchgpu"),
    case("fit-count-zero", f"fit {MODEL} --count 0", 2, r"--count"),
    case("fit-unknown-engine", f"fit {MODEL} --engine triton", 2, r"'triton' is not one of"),
    case("fit-utilization-above-one", f"fit {MODEL} --gpu-memory-utilization 1.5", 2, r"utilization"),
    case("fit-utilization-zero", f"fit {MODEL} --gpu-memory-utilization 0", 2, r"utilization"),
    case("fit-unknown-quantization", f"fit {MODEL} --quantization int3", 2, r"'int3' is not one of"),
    case("fit-hf-config-missing", "fit hf:org/x --hf-config nothere.json", 2, r"nothere\.json"),
    case("fit-hf-config-not-json", "fit hf:org/x --hf-config config.json", 2, r"config\.json",
         files={"config.json": "{not json"}),
    case("fit-hf-config-binary", "fit hf:org/x --hf-config config.json", 2, r"config\.json",
         files={"config.json": GARBAGE}),
    case("fit-hf-config-missing-fields", "fit hf:org/x --hf-config config.json", 2, r"config\.json",
         files={"config.json": '{"model_type": "llama"}'}),
    case("fit-hf-config-a-list", "fit hf:org/x --hf-config config.json", 2, r"config\.json",
         files={"config.json": "[1, 2]"}),
    case("fit-hf-config-a-directory", "fit hf:org/x --hf-config confdir", 2, r"confdir", files={"confdir": DIR}),
    case("fit-bad-hf-id", "fit hf:not-a-repo", 2, r"hf:not-a-repo"),
    case("fit-hf-unreachable-hub", "fit hf:org/x", 4, r"cannot reach the Hugging Face hub"),
]

UP = [
    case("up-no-model", "up", 2, r"no model given"),
    case("up-unknown-model", "up nosuch --dry-run", 3, r"nosuch"),
    case("up-unknown-gpu", f"up {MODEL} --gpu nosuchgpu --dry-run", 2, r"nosuchgpu"),
    case("up-count-zero", f"up {MODEL} --count 0", 2, r"--count"),
    case("up-unknown-provider", f"up {MODEL} --provider nosuch --dry-run", 2, r"nosuch"),
    case("up-max-price-zero", f"up {MODEL} --max-price 0", 2, r"--max-price"),
    case("up-max-price-negative", f"up {MODEL} --max-price -3", 2, r"--max-price"),
    case("up-ttl-word", f"up {MODEL} --ttl banana --dry-run", 2, r"banana"),
    case("up-ttl-zero", f"up {MODEL} --ttl 0 --dry-run", 2, r"ttl|duration"),
    case("up-ttl-negative", f"up {MODEL} --ttl -1h --dry-run", 2, r"-1h"),
    case("up-ttl-overflow", f"up {MODEL} --ttl 99999999999d --dry-run", 2, r"99999999999d"),
    case("up-launch-timeout-word", f"up {MODEL} --launch-timeout soon --dry-run", 2, r"soon"),
    case("up-ssh-timeout-word", f"up {MODEL} --ssh-timeout later --dry-run", 2, r"later"),
    case("up-health-timeout-word", f"up {MODEL} --health-timeout abc --dry-run", 2, r"abc"),
    case("up-unknown-engine", f"up {MODEL} --engine triton", 2, r"'triton' is not one of"),
    case("up-utilization-above-one", f"up {MODEL} --gpu-memory-utilization 2 --dry-run", 2, r"utilization"),
    case("up-unknown-quantization", f"up {MODEL} --quantization int3", 2, r"'int3' is not one of"),
    case("up-max-model-len-zero", f"up {MODEL} --max-model-len 0 --dry-run", 2, r"max-model-len"),
    case("up-max-model-len-word", f"up {MODEL} --max-model-len long", 2, r"long"),
    case("up-host-missing-value", f"up {MODEL} --host", 2, r"--host.* requires an argument"),
    case("up-host-empty", (*f"up {MODEL} --host".split(), ""), 2, r"host"),
    case("up-host-no-address", f"up {MODEL} --host root@ --dry-run", 2, r"root@"),
    case("up-host-port-too-big", f"up {MODEL} --host root@10.0.0.1:99999 --dry-run", 2, r"99999"),
    case("up-host-port-word", f"up {MODEL} --host root@10.0.0.1:ssh --dry-run", 2, r"ssh"),
    # a key file that is not there: missing credentials (6), like a missing API key
    case("up-identity-missing-file", f"up {MODEL} --host root@127.0.0.1:9 --identity nokey --dry-run", 6,
         r"identity file nokey does not exist"),
    case("up-identity-a-directory", f"up {MODEL} --host root@127.0.0.1:9 --identity keydir --dry-run", 2,
         r"keydir", files={"keydir": DIR}),
    case("up-identity-without-host", f"up {MODEL} --identity key --dry-run", 2, r"--identity",
         files={"key": "x"}),
    case("up-price-per-hour-negative", f"up {MODEL} --host local --price-per-hour -1", 2, r"price-per-hour"),
    case("up-price-per-hour-without-host", f"up {MODEL} --price-per-hour 1 --dry-run", 2, r"--price-per-hour"),
    case("up-name-with-spaces", (*f"up {MODEL} --dry-run --name".split(), "my model"), 2, r"my model"),
    case("up-name-too-long", (*f"up {MODEL} --dry-run --name".split(), "n" * 200), 2, r"name"),
    case("up-name-slash", f"up {MODEL} --dry-run --name a/b", 2, r"a/b"),
    case("up-wizard-without-terminal", "up -i", 2, r"terminal|TTY"),
    case("up-print-command-without-wizard", f"up {MODEL} --print-command", 2, r"the wizard needs a terminal"),
    case("up-hf-config-missing", "up hf:org/x --hf-config nothere.json --dry-run", 2, r"nothere\.json"),
    case("up-h100-too-cheap", f"up {MODEL} --gpu h100 --max-price 0.5 --dry-run", 5, r"0\.5"),
    case("up-max-price-too-low", f"up {MODEL} --max-price 0.01 --dry-run", 5, r"0\.01"),
    # the GPU named cannot hold the model: bad input (2), as for 'export k8s'; 5 is for offers run out
    case("up-model-fits-no-gpu", "up llama-3.1-70b --gpu t4 --count 1 --dry-run", 2, r"does not fit on 1 x T4"),
    case("up-no-credentials-anywhere", f"up {MODEL} -y", 6, r"LAMBDA_API_KEY.*RUNPOD_API_KEY.*--host"),
    case("up-no-credentials-for-the-provider", f"up {MODEL} --provider lambda -y", 6, r"LAMBDA_API_KEY"),
    case("up-spot-on-own-host", f"up {MODEL} --spot --host local --dry-run", 2, r"--spot"),
    case("up-unknown-optimize", f"up {MODEL} --optimize speed --dry-run", 2, r"'speed' is not one of"),
    case("up-slo-word", f"up {MODEL} --slo ttft=fast --dry-run", 2, r"fast"),
    case("up-slo-unknown-key", f"up {MODEL} --slo speed=1 --dry-run", 2, r"speed"),
    case("up-concurrency-word", f"up {MODEL} --concurrency lots --dry-run", 2, r"lots"),
    case("up-input-len-zero", f"up {MODEL} --input-len 0 --dry-run", 2, r"input-len"),
    case("up-extra-argument", f"up {MODEL} extra", 2, r"unexpected extra argument"),
]

PROJECT_FILE = [
    case("project-yaml-syntax", "up --dry-run", 2, r"gpuctl\.yaml", files={PROJECT_YAML: "model: [\n"}),
    case("project-yaml-binary", "up --dry-run", 2, r"gpuctl\.yaml", files={PROJECT_YAML: GARBAGE}),
    case("project-yaml-a-list", "up --dry-run", 2, r"gpuctl\.yaml", files={PROJECT_YAML: "- a\n- b\n"}),
    case("project-yaml-a-scalar", "up --dry-run", 2, r"gpuctl\.yaml", files={PROJECT_YAML: "just text\n"}),
    case("project-yaml-unknown-field", "up --dry-run", 2, r"gpuctl\.yaml.*colour",
         files={PROJECT_YAML: f"model: {MODEL}\ncolour: blue\n"}),
    case("project-yaml-bad-engine", "up --dry-run", 2, r"field 'engine'",
         files={PROJECT_YAML: f"model: {MODEL}\nengine: triton\n"}),
    case("project-yaml-bad-ttl", "up --dry-run", 2, r"gpuctl\.yaml.*ttl",
         files={PROJECT_YAML: f"model: {MODEL}\nttl: forever\n"}),
    case("project-yaml-ttl-a-list", "up --dry-run", 2, r"gpuctl\.yaml.*ttl",
         files={PROJECT_YAML: f"model: {MODEL}\nttl: [1, 2]\n"}),
    case("project-yaml-unknown-gpu", "up --dry-run", 2, r"nosuchgpu",
         files={PROJECT_YAML: f"model: {MODEL}\ngpu: nosuchgpu\n"}),
    case("project-yaml-unknown-model", "up --dry-run", 3, r"nosuchmodel",
         files={PROJECT_YAML: "model: nosuchmodel\n"}),
    case("project-yaml-unknown-provider", "up --dry-run", 2, r"nosuch",
         files={PROJECT_YAML: f"model: {MODEL}\nprovider: nosuch\n"}),
    case("project-yaml-a-directory", "up --dry-run", 2, r"gpuctl\.yaml.*directory", files={PROJECT_YAML: DIR}),
    case("project-yaml-breaks-fit-too", f"fit {MODEL}", 2, r"gpuctl\.yaml",
         files={PROJECT_YAML: "engine: triton\n"}),
    case("project-yaml-breaks-init", "init", 2, r"gpuctl\.yaml", files={PROJECT_YAML: "model: [\n"}),
]

STATE_FILE = [
    case("state-corrupt-status", "status --no-probe", 2, r"state\.json is corrupt",
         files={STATE: '{"schema_version": 1, "deployments": {'}),
    case("state-corrupt-down-all", "down --all", 2, r"state\.json is corrupt",
         files={STATE: '{"schema_version": 1, "deployments": {'}),
    case("state-corrupt-logs", "logs one", 2, r"state\.json is corrupt", files={STATE: "{"}),
    case("state-corrupt-env", "env one", 2, r"state\.json is corrupt", files={STATE: "{"}),
    case("state-corrupt-gc", "gc --dry-run", 2, r"state\.json is corrupt", files={STATE: "{"}),
    case("state-corrupt-up", f"up {MODEL} -y", 2, r"state\.json is corrupt", files={STATE: "{"},
         env={"RUNPOD_API_KEY": "not-checked-before-the-state-file"}),
    case("state-corrupt-ssh", "ssh one", 2, r"state\.json is corrupt", files={STATE: "{"}),
    case("state-corrupt-bench", "bench one", 2, r"state\.json is corrupt", files={STATE: "{"}),
    case("state-corrupt-json-output", "status --json --no-probe", 2, r"state\.json is corrupt", files={STATE: "{"}),
    case("state-newer-schema", "status --no-probe", 2, r"newer gpuctl",
         files={STATE: '{"schema_version": 99, "deployments": {}}'}),
    case("state-newer-schema-down", "down one", 2, r"newer gpuctl",
         files={STATE: '{"schema_version": 99, "deployments": {"one": {}}}'}),
    case("state-binary", "status --no-probe", 2, r"state\.json", files={STATE: GARBAGE}),
    case("state-a-list", "status --no-probe", 2, r"state\.json", files={STATE: "[]"}),
    case("state-bad-record", "status --no-probe", 2, r"state\.json",
         files={STATE: '{"schema_version": 1, "deployments": {"one": {"name": "one", "status": "flying"}}}'}),
    case("state-empty-file", "status --no-probe", 2, r"state\.json", files={STATE: ""}),
    case("state-a-directory", "status --no-probe", 2, r"state\.json", files={STATE: DIR}),
    case("state-dir-a-file", "status --no-probe", 2, r"\.gpuctl", files={".gpuctl": "not a directory"}),
    case("state-dir-a-file-down", "down --all", 2, r"\.gpuctl", files={".gpuctl": "x"}),
]

CONFIG_CASES = [
    case("config-get-unknown-key", "config get nosuch.key", 3, r"nosuch\.key"),
    case("config-get-close-match", "config get runpod.apikey", 3, r"did you mean runpod\.api_key"),
    case("config-set-unknown-key", "config set nosuch.key v", 3, r"nosuch\.key"),
    case("config-set-unknown-provider", "config set ghost.api_key v", 3, r"ghost"),
    case("config-set-missing-value", "config set runpod.api_key", 2, r"Missing argument 'VALUE'"),
    case("config-set-timeout-word", "config set prices.timeout soon", 2, r"soon"),
    case("config-set-max-age-negative", "config set prices.max_age -5", 2, r"-5"),
    case("config-unset-unknown-key", "config unset nosuch.key", 3, r"nosuch\.key"),
    case("config-unknown-subcommand", "config delete runpod.api_key", 2, r"No such command 'delete'"),
    case("config-get-no-key", "config get", 2, r"Missing argument 'KEY'"),
    case("config-file-syntax", "config list", 2, r"config\.yaml", files={CONFIG: "runpod: [\n"}),
    case("config-file-binary", "config list", 2, r"config\.yaml", files={CONFIG: GARBAGE}),
    case("config-file-a-list", "config list", 2, r"config\.yaml", files={CONFIG: "- a\n"}),
    case("config-file-a-directory", "config list", 2, r"config\.yaml", files={CONFIG: DIR}),
    case("config-file-broken-set", "config set runpod.api_key k", 2, r"config\.yaml", files={CONFIG: "runpod: [\n"}),
    case("config-file-broken-up", f"up {MODEL} --dry-run", 2, r"config\.yaml", files={CONFIG: "x: [\n"}),
]

NAMED = [  # commands taking a deployment NAME
    case("logs-unknown-name", "logs nosuch", 3, r"nosuch"),
    case("env-unknown-name", "env nosuch", 3, r"nosuch"),
    case("down-unknown-name", "down nosuch", 3, r"nosuch"),
    case("ssh-unknown-name", "ssh nosuch", 3, r"nosuch"),
    case("bench-unknown-name", "bench nosuch", 3, r"nosuch"),
    case("logs-unknown-name-close-match", "logs onf", 3, r"onf", deployments=RUNNING),
    case("logs-no-name-none-exist", "logs", 3, r"no active deployment"),
    case("env-no-name-none-exist", "env", 3, r"no active deployment"),
    case("logs-no-name-two-exist", "logs", 2, r"one.*two", deployments={"one": {}, "two": {}}),
    case("down-no-name-two-exist", "down", 2, r"one.*two", deployments={"one": {}, "two": {}}),
    case("logs-tail-negative", "logs one --tail -1", 2, r"--tail", deployments=RUNNING),
    case("logs-tail-word", "logs one --tail lots", 2, r"lots", deployments=RUNNING),
    case("ssh-port-too-big", "ssh one --tunnel --port 70000", 2, r"--port", deployments=RUNNING),
    case("ssh-port-word", "ssh one --tunnel --port http", 2, r"http", deployments=RUNNING),
    case("down-name-and-all", "down one --all", 2, r"--all", deployments=RUNNING),
    case("down-terminate-timeout-word", "down one --terminate-timeout soon", 2, r"soon", deployments=RUNNING),
    case("down-identity-missing-file", "down one --host root@127.0.0.1:9 --identity nokey", 6,
         r"identity file nokey does not exist"),
    case("down-host-bad-port", "down one --host root@10.0.0.1:99999", 2, r"99999"),
    case("down-host-without-name", "down --host root@10.0.0.1", 2, r"NAME|name"),
    case("down-unknown-option", "down one --force", 2, r"No such option '--force'"),
    case("logs-ended-deployment", "logs one", 2, r"'one' .*terminated", deployments={"one": {"status": "terminated"}}),
    case("env-ended-deployment", "env one", 2, r"'one' has no endpoint \(status terminated\)",
         deployments={"one": {"status": "terminated"}}),
]

BENCH = [
    case("bench-nothing-to-measure", "bench", 3, r"no active deployment.*gpuctl up"),
    case("bench-url-not-a-url", "bench --url notaurl", 2, r"notaurl"),
    case("bench-url-ftp", "bench --url ftp://127.0.0.1/", 2, r"ftp"),
    case("bench-concurrency-zero", "bench --url http://127.0.0.1:9/v1 -c 0", 2, r"concurrency|-c"),
    case("bench-concurrency-word", "bench --url http://127.0.0.1:9/v1 -c many", 2, r"many"),
    case("bench-rate-negative", "bench --url http://127.0.0.1:9/v1 --rate -1", 2, r"-1"),
    case("bench-requests-zero", "bench --url http://127.0.0.1:9/v1 -n 0", 2, r"-n|requests"),
    case("bench-duration-word", "bench --url http://127.0.0.1:9/v1 --duration ages", 2, r"ages"),
    case("bench-duration-and-requests", "bench --url http://127.0.0.1:9/v1 --duration 10s -n 5", 2, r"duration"),
    case("bench-dataset-missing", "bench --url http://127.0.0.1:9/v1 --dataset nothere.jsonl", 2,
         r"nothere\.jsonl"),
    case("bench-dataset-not-jsonl", "bench --url http://127.0.0.1:9/v1 --dataset d.jsonl", 2, r"d\.jsonl",
         files={"d.jsonl": "this is not json\n"}),
    case("bench-dataset-no-prompt", "bench --url http://127.0.0.1:9/v1 --dataset d.jsonl", 2, r"d\.jsonl",
         files={"d.jsonl": '{"text": "hello"}\n'}),
    case("bench-dataset-empty", "bench --url http://127.0.0.1:9/v1 --dataset d.jsonl", 2, r"d\.jsonl",
         files={"d.jsonl": ""}),
    case("bench-dataset-binary", "bench --url http://127.0.0.1:9/v1 --dataset d.jsonl", 2, r"d\.jsonl",
         files={"d.jsonl": GARBAGE}),
    case("bench-dataset-a-directory", "bench --url http://127.0.0.1:9/v1 --dataset data", 2, r"data",
         files={"data": DIR}),
    case("bench-unknown-endpoint", "bench --url http://127.0.0.1:9/v1 --endpoint embeddings", 2,
         r"'embeddings' is not one of"),
    case("bench-slo-word", "bench --url http://127.0.0.1:9/v1 --slo ttft=fast", 2, r"fast"),
    case("bench-slo-unknown-key", "bench --url http://127.0.0.1:9/v1 --slo speed=1", 2, r"speed"),
    case("bench-slo-no-equals", "bench --url http://127.0.0.1:9/v1 --slo ttft", 2, r"ttft"),
    case("bench-allow-failures-above-one", "bench --url http://127.0.0.1:9/v1 --allow-failures 2", 2,
         r"allow-failures"),
    case("bench-price-negative", "bench --url http://127.0.0.1:9/v1 --price-per-hour -1", 2, r"price-per-hour"),
    case("bench-prefix-share-above-one", "bench --url http://127.0.0.1:9/v1 --prefix-share 1.5", 2, r"prefix"),
    case("bench-burstiness-zero", "bench --url http://127.0.0.1:9/v1 --rate 1 --burstiness 0", 2, r"burstiness"),
    case("bench-timeout-zero", "bench --url http://127.0.0.1:9/v1 --timeout 0", 2, r"timeout"),
    case("bench-input-len-zero", "bench --url http://127.0.0.1:9/v1 --input-len 0", 2, r"input-len"),
    case("bench-from-host-with-url", "bench --url http://127.0.0.1:9/v1 --from host", 2, r"--from host"),
    case("bench-from-unknown", "bench --url http://127.0.0.1:9/v1 --from cloud", 2, r"'cloud' is not one of"),
    case("bench-name-and-url", "bench one --url http://127.0.0.1:9/v1", 2, r"--url", deployments=RUNNING),
    # nothing answers: the run's requests failed (8, docs/bench.md); 4 is for a server answering garbage
    case("bench-server-unreachable", "bench --url http://127.0.0.1:9/v1 -n 1", 8, r"cannot reach http://127\.0\.0\.1:9"),
]

EXPORT = [
    case("export-unknown-format", "export helm llama", 2, r"No such command 'helm'"),
    case("export-k8s-unknown-target", "export k8s nosuch", 3, r"nosuch"),
    case("export-k8s-no-target", "export k8s", 2, r"Missing argument"),
    case("export-k8s-unknown-gpu", f"export k8s {MODEL} --gpu nosuchgpu", 2, r"nosuchgpu"),
    case("export-k8s-does-not-fit", "export k8s llama-3.1-70b --gpu t4", 2, r"T4|t4"),
    case("export-k8s-unknown-option", f"export k8s {MODEL} --nosuch", 2, r"No such option"),
]

WEIGHTS = [
    case("weights-unknown-subcommand", "weights fetch x", 2, r"No such command 'fetch'"),
    case("weights-pull-no-model", "weights pull", 2, r"Missing argument 'MODEL'"),
    case("weights-pull-nowhere", f"weights pull {MODEL}", 2, r"--host|--to"),
    case("weights-pull-two-places", f"weights pull {MODEL} --host local --to runpod", 2, r"--host.*--to|--to.*--host"),
    case("weights-pull-unknown-provider", f"weights pull {MODEL} --to nosuch", 2, r"nosuch"),
    case("weights-pull-unknown-model", "weights pull nosuch --host root@127.0.0.1:9", 3, r"nosuch"),
    case("weights-pull-bad-hf-id", "weights pull hf: --host root@127.0.0.1:9", 2, r"hf:"),
    case("weights-pull-identity-missing", f"weights pull {MODEL} --host root@127.0.0.1:9 --identity nokey", 6,
         r"identity file nokey does not exist"),
    case("weights-pull-host-bad-port", f"weights pull {MODEL} --host root@10.0.0.1:0", 2, r"10\.0\.0\.1:0"),
    case("weights-verify-no-host", f"weights verify {MODEL}", 2, r"--host"),
    case("weights-rm-without-terminal", f"weights rm {MODEL} --host root@127.0.0.1:9", 2, r"-y|terminal"),
    case("weights-ls-unknown-provider", "weights ls --to nosuch", 2, r"nosuch"),
]

INIT = [
    case("init-unknown-engine", "init --engine triton", 2, r"'triton' is not one of"),
    case("init-ttl-word", "init --ttl banana", 2, r"banana"),
    case("init-unknown-gpu", "init --gpu nosuchgpu", 2, r"nosuchgpu"),
    case("init-unknown-provider", "init --provider nosuch", 2, r"nosuch"),
    case("init-exists", "init", 2, r"gpuctl\.yaml.*--force", files={PROJECT_YAML: f"model: {MODEL}\n"}),
    case("init-unknown-model", "init --model nosuchmodel", 3, r"nosuchmodel"),
    case("init-wizard-without-terminal", "init -i", 2, r"terminal|TTY"),
    case("init-yaml-a-directory", "init --force", 2, r"gpuctl\.yaml", files={PROJECT_YAML: DIR}),
]

SERVICES = [  # replicas, nodes, limits and scale
    case("up-replicas-zero", f"up {MODEL} --replicas 0 --dry-run", 2, r"replicas"),
    case("up-nodes-word", f"up {MODEL} --nodes many --dry-run", 2, r"many"),
    case("up-unknown-router-policy", f"up {MODEL} --replicas 2 --router-policy fastest --dry-run", 2,
         r"'fastest' is not one of"),
    case("up-idle-word", f"up {MODEL} --idle sometimes --dry-run", 2, r"sometimes"),
    case("up-budget-zero", f"up {MODEL} --budget 0 --dry-run", 2, r"budget"),
    case("up-budget-word", f"up {MODEL} --budget lots --dry-run", 2, r"lots"),
    case("scale-no-name", "scale", 2, r"Missing argument 'NAME'"),
    case("scale-unknown-name", "scale nosuch 2", 3, r"nosuch"),
    case("scale-count-word", "scale one many", 2, r"many", deployments=RUNNING),
    case("scale-corrupt-state", "scale one 2", 2, r"state\.json is corrupt", files={STATE: "{"}),
]

OPERATE = [  # top and cost
    case("top-interval-word", "top --interval often", 2, r"often"),
    case("top-iterations-zero", "top -n 0", 2, r"iterations|-n"),
    case("top-unknown-name", "top nosuch", 3, r"nosuch"),
    case("top-ended-deployment", "top one", 2, r"'one' is not running \(status terminated\)",
         deployments={"one": {"status": "terminated"}}),
    case("top-corrupt-state", "top", 2, r"state\.json is corrupt", files={STATE: "{"}),
    case("cost-since-word", "cost --since whenever", 2, r"whenever"),
    case("cost-corrupt-state", "cost", 2, r"state\.json is corrupt", files={STATE: "{"}),
    case("cost-unknown-option", "cost --nosuch", 2, r"No such option '--nosuch'"),
]

OTHERS = [
    case("completion-unknown-shell", "completion tcsh", 2, r"'tcsh' is not one of"),
    case("completion-no-shell", "completion", 2, r"Missing argument '\{bash\|zsh\|fish\}'"),
    case("doctor-timeout-zero", "doctor --timeout 0", 2, r"--timeout"),
    case("doctor-timeout-word", "doctor --timeout soon", 2, r"soon"),
    case("providers-extra-argument", "providers runpod", 2, r"unexpected extra argument"),
    case("status-extra-argument", "status one two", 2, r"unexpected extra argument"),
    case("gc-unknown-option", "gc --force", 2, r"No such option '--force'"),
    case("gc-without-terminal", "gc", 2, r"-y|terminal", deployments={"one": {"status": "failed"}}),
    case("providers-broken-config", "providers", 2, r"config\.yaml", files={CONFIG: "runpod: [\n"}),
]

CASES: list[Case] = [*ROOT, *PRICES, *MODELS, *FIT, *UP, *PROJECT_FILE, *STATE_FILE, *CONFIG_CASES, *NAMED,
                     *BENCH, *EXPORT, *WEIGHTS, *INIT, *SERVICES, *OPERATE, *OTHERS]
