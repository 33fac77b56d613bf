"""The environment of a training process: the platform's variables and the toolkit's ``SM_*``.

In a SageMaker framework container two parties set variables. The platform sets
``TRAINING_JOB_NAME``, ``TRAINING_JOB_ARN``, ``AWS_REGION`` and the job's ``Environment`` map;
then the training toolkit reads ``/opt/ml/input/config`` and exports ``SM_*``
(``Environment.to_env_vars`` + ``mapping.to_env_vars`` in sagemaker-training 5.1.4) before it
starts the user script. We run the user script directly, so we compute both here, in the
toolkit's exact format. ``tests/unit/runtime/test_toolkit_contract.py`` runs the real toolkit
against our folder and env and compares every ``SM_*`` value.

Precedence, lowest first: platform defaults (region, ``SAGEMAKER_PROGRAM``, ...), then the
job's ``Environment`` (SageMaker lets it override those), then the names the platform and the
toolkit always overwrite (job name/ARN, ``CURRENT_HOST``, ``PYTHONPATH``, ``SAGEMAKER_BASE_DIR``),
then ``SM_*``, computed from the result so that, e.g., a ``SAGEMAKER_PROGRAM`` given in the
job's Environment shows in ``SM_USER_ENTRY_POINT`` as it would under the toolkit.

Deliberate difference: the toolkit probes ``SM_NUM_GPUS`` (``nvidia-smi --list-gpus``, all
GPUs of the machine) and ``SM_NUM_CPUS`` (``multiprocessing.cpu_count()``); we are told the
counts the scheduler allocated to this host, which is what the script should use.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sageport.runtime import hyperparameters, names
from sageport.runtime.config_files import ConfigFiles, config_files
from sageport.runtime.paths import HostPaths


def env_value(value: Any) -> str:
    """``mapping.to_env_vars``'s value format: str as-is, None "", else compact sorted JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin1")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def to_sm_env(mapping: Mapping[str, Any]) -> dict[str, str]:
    """``mapping.to_env_vars``: ``SM_`` + upper-cased key (hyphens kept) → formatted value."""
    return {
        (f"{names.SM_PREFIX}{key.upper()}" if key else ""): env_value(value)
        for key, value in mapping.items()
    }


def _distribution_groups(framework: Mapping[str, Any], current_group: str) -> Any:
    """``sagemaker_distribution_instance_groups``, else the current group if any distribution
    flag is on (``get_distribution_instance_groups_from_resource_config``)."""
    if names.DISTRIBUTION_INSTANCE_GROUPS_PARAM in framework:
        return framework[names.DISTRIBUTION_INSTANCE_GROUPS_PARAM]
    if any(framework.get(flag, False) for flag in names.DISTRIBUTION_FLAGS):
        return [current_group]
    return []


def toolkit_environment(
    files: ConfigFiles,
    paths: HostPaths,
    process_env: Mapping[str, str],
    *,
    num_gpus: int,
    num_cpus: int,
    num_neurons: int = 0,
) -> dict[str, Any]:
    """The toolkit's ``Environment`` properties (``SM_TRAINING_ENV``), as the process sees them.

    ``process_env`` is the rest of the process's environment: the toolkit reads
    ``SAGEMAKER_PROGRAM``, ``SAGEMAKER_TRAINING_MODULE``, ``TRAINING_JOB_NAME`` and
    ``SM_HP_MP_PARAMETERS`` from it. Besides being exported, the result tells a launcher the
    distribution hosts and master host.
    """
    split = hyperparameters.split(hyperparameters.decode(files.hyperparameters))
    platform, framework = split.sagemaker, split.framework
    rc = files.resource_config
    hosts = rc["hosts"]
    current_host = rc["current_host"]
    current_group = rc.get("current_group_name", names.DEFAULT_INSTANCE_GROUP)
    instance_type = rc.get("current_instance_type", names.LOCAL_INSTANCE_TYPE)
    groups_config = rc.get("instance_groups", [])

    distribution_groups = _distribution_groups(framework, current_group)
    if groups_config:
        distribution_hosts = [
            host
            for group in groups_config
            if group["instance_group_name"] in distribution_groups
            for host in group["hosts"]
        ]
    else:
        distribution_hosts = list(hosts)
    master = distribution_hosts[0] if distribution_hosts else hosts[0]

    # The toolkit prefers the env var, and str()s a missing hyperparameter into "None".
    program_env = process_env.get(names.USER_PROGRAM_ENV)
    module_name = (
        program_env if program_env is not None else str(platform.get(names.USER_PROGRAM_PARAM))
    )
    if module_name and module_name.endswith(".py"):
        module_name = module_name[:-3]
    # The process will see SM_HP_MP_PARAMETERS from an ``mp_parameters`` hyperparameter.
    mp_parameters = process_env.get(names.MP_PARAMETERS_ENV)
    for key, value in split.user.items():
        if f"{names.SM_PREFIX}HP_{key.upper()}" == names.MP_PARAMETERS_ENV:
            mp_parameters = env_value(value)
    # Reproduces ``mp and mp != "{}"``: None, "" or a bool, exactly as the toolkit's JSON shows.
    modelparallel = mp_parameters and mp_parameters != "{}"

    return {
        "additional_framework_parameters": framework,
        "channel_input_dirs": {
            channel: str(paths.channel_dir(channel)) for channel in files.input_data_config
        },
        "current_host": current_host,
        "current_instance_group": current_group,
        "current_instance_group_hosts": next(
            (g["hosts"] for g in groups_config if g["instance_group_name"] == current_group), []
        ),
        "current_instance_type": instance_type,
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distribution_groups,
        "framework_module": process_env.get(names.FRAMEWORK_MODULE_ENV),
        "hosts": hosts,
        "hyperparameters": split.user,
        "input_config_dir": str(paths.input_config_dir),
        "input_data_config": files.input_data_config,
        "input_dir": str(paths.input_dir),
        "instance_groups": [g["instance_group_name"] for g in groups_config],
        "instance_groups_dict": {g["instance_group_name"]: g for g in groups_config},
        "is_hetero": len(groups_config) > 1,
        "is_master": current_host == master,
        "is_modelparallel_enabled": modelparallel,
        # smddp launchers are AWS-only binaries; the toolkit's `which` probe finds none here.
        "is_smddpmprun_installed": False,
        "is_smddprun_installed": False,
        "job_name": process_env.get(names.TRAINING_JOB_NAME_ENV),
        "log_level": platform.get(names.LOG_LEVEL_PARAM, names.DEFAULT_LOG_LEVEL),
        "master_hostname": master,
        "model_dir": str(paths.model_dir),
        "module_dir": str(platform.get(names.SUBMIT_DIR_PARAM, str(paths.code_dir))),
        "module_name": module_name,
        "network_interface_name": rc.get("network_interface_name", names.DEFAULT_NETWORK_INTERFACE),
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        # The toolkit hard-codes 64 cores for trn2.48xlarge instead of probing neuron-ls.
        "num_neurons": 64 if "trn2.48xlarge" in instance_type else num_neurons,
        "output_data_dir": str(paths.output_data_dir),
        "output_dir": str(paths.output_dir),
        "output_intermediate_dir": str(paths.output_intermediate_dir),
        "resource_config": rc,
        "topology": rc.get("topology", []),
        "user_entry_point": program_env or platform.get(names.USER_PROGRAM_PARAM),
    }


def sm_env_vars(toolkit_env: Mapping[str, Any]) -> dict[str, str]:
    """``Environment.to_env_vars``: the ``SM_*`` variables of a toolkit environment."""
    env: dict[str, Any] = {
        "hosts": toolkit_env["hosts"],
        "network_interface_name": toolkit_env["network_interface_name"],
        "hps": toolkit_env["hyperparameters"],
        "user_entry_point": toolkit_env["user_entry_point"],
        "framework_params": toolkit_env["additional_framework_parameters"],
        "resource_config": toolkit_env["resource_config"],
        "input_data_config": toolkit_env["input_data_config"],
        "output_data_dir": toolkit_env["output_data_dir"],
        "channels": sorted(toolkit_env["channel_input_dirs"]),
        "current_host": toolkit_env["current_host"],
        "current_instance_type": toolkit_env["current_instance_type"],
        "current_instance_group": toolkit_env["current_instance_group"],
        "current_instance_group_hosts": toolkit_env["current_instance_group_hosts"],
        "instance_groups": toolkit_env["instance_groups"],
        "instance_groups_dict": toolkit_env["instance_groups_dict"],
        "distribution_instance_groups": toolkit_env["distribution_instance_groups"],
        "is_hetero": toolkit_env["is_hetero"],
        "module_name": toolkit_env["module_name"],
        "log_level": toolkit_env["log_level"],
        "framework_module": toolkit_env["framework_module"],
        "input_dir": toolkit_env["input_dir"],
        "input_config_dir": toolkit_env["input_config_dir"],
        "output_dir": toolkit_env["output_dir"],
        "num_cpus": toolkit_env["num_cpus"],
        "num_gpus": toolkit_env["num_gpus"],
        "num_neurons": toolkit_env["num_neurons"],
        "model_dir": toolkit_env["model_dir"],
        "module_dir": toolkit_env["module_dir"],
        "training_env": dict(toolkit_env),
        "user_args": hyperparameters.to_cmd_args(toolkit_env["hyperparameters"]),
        "output_intermediate_dir": toolkit_env["output_intermediate_dir"],
    }
    if toolkit_env["topology"]:
        env["topology"] = toolkit_env["topology"]
    for channel, path in toolkit_env["channel_input_dirs"].items():
        env[f"channel_{channel}"] = path
    for key, value in toolkit_env["hyperparameters"].items():
        env[f"hp_{key}"] = value
    return to_sm_env(env)


def training_env(
    spec: Mapping[str, Any],
    *,
    job_name: str,
    job_arn: str,
    host: str,
    paths: HostPaths,
    num_gpus: int,
    num_cpus: int,
    region: str,
    num_neurons: int = 0,
    s3_endpoint_url: str | None = None,
    base_env: Mapping[str, str] | None = None,
    forced_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every variable the training process of ``host`` gets, on top of a clean base env.

    ``paths`` are the paths as the process sees them (``HostPaths.in_sandbox()`` when the
    folder is bind-mounted at /opt/ml; else the host folder, and ``SAGEMAKER_BASE_DIR`` is
    set to it). ``base_env`` holds platform defaults the job's ``Environment`` may override
    (endpoint URLs, credentials); ``forced_env`` holds values it may not (``CUDA_VISIBLE_DEVICES``).
    """
    files = config_files(spec, host)
    platform = hyperparameters.split(hyperparameters.decode(files.hyperparameters)).sagemaker

    env: dict[str, str] = {
        names.AWS_REGION_ENV: region,
        names.AWS_DEFAULT_REGION_ENV: region,
        names.STUDIO_LOCAL_MODE_ENV: "true",
    }
    if names.USER_PROGRAM_PARAM in platform:
        env[names.USER_PROGRAM_ENV] = env_value(platform[names.USER_PROGRAM_PARAM])
    if names.SUBMIT_DIR_PARAM in platform:
        env[names.SUBMIT_DIR_ENV] = env_value(platform[names.SUBMIT_DIR_PARAM])
    if s3_endpoint_url:
        env[names.S3_ENDPOINT_URL_ENV] = s3_endpoint_url
    env.update(base_env or {})
    env.update(spec.get("Environment") or {})

    user_pythonpath = env.get(names.PYTHONPATH_ENV)
    sagemaker_region = platform.get(names.REGION_NAME_PARAM) or env.get(
        names.AWS_DEFAULT_REGION_ENV, region
    )
    env.update(
        {
            names.TRAINING_JOB_NAME_ENV: job_name,
            names.TRAINING_JOB_ARN_ENV: job_arn,
            names.CURRENT_HOST_ENV: host,
            names.JOB_NAME_ENV: env_value(platform.get(names.JOB_NAME_PARAM, "")),
            names.REGION_NAME_ENV: env_value(sagemaker_region or ""),
            names.PYTHONPATH_ENV: ":".join(p for p in (str(paths.code_dir), user_pythonpath) if p),
        }
    )
    if not paths.is_default_root:
        env[names.BASE_DIR_ENV] = str(paths.root)
    env.update(forced_env or {})

    toolkit = toolkit_environment(
        files, paths, env, num_gpus=num_gpus, num_cpus=num_cpus, num_neurons=num_neurons
    )
    env.update(sm_env_vars(toolkit))
    return env
