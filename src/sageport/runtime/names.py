"""Every name of the SageMaker training-container contract, in one place.

Modelled on the training toolkit's ``sagemaker_training/params.py`` (sagemaker-training 5.1.4),
without its import-time side effects: this module only defines strings. Each name says where
the contract comes from, so a reader can check it against the toolkit or the AWS docs.
"""

from __future__ import annotations

from typing import Final

# -- the /opt/ml folder ---------------------------------------------------------------------

DEFAULT_BASE_DIR: Final = "/opt/ml"
"""Where a SageMaker container sees its host folder; inside a sandbox we bind-mount it here."""

BASE_DIR_ENV: Final = "SAGEMAKER_BASE_DIR"
"""The toolkit's (and inference toolkits') relocation of ``/opt/ml`` (``environment.py``)."""

HYPERPARAMETERS_FILE: Final = "hyperparameters.json"
"""``input/config/hyperparameters.json``: the job's HyperParameters map, values as sent."""

INPUT_DATA_CONFIG_FILE: Final = "inputdataconfig.json"
"""``input/config/inputdataconfig.json``: one entry per channel (mode, distribution, ...)."""

RESOURCE_CONFIG_FILE: Final = "resourceconfig.json"
"""``input/config/resourceconfig.json``: this host, all hosts, instance groups."""

FAILURE_FILE: Final = "failure"
"""``output/failure``: its first 1024 characters become the job's FailureReason."""

SUCCESS_FILE: Final = "success"
"""``output/success``: written (empty) by the toolkit when the user code exits 0."""

REQUIREMENTS_FILE: Final = "requirements.txt"
"""Installed with pip before a Python program or package runs (``modules.py``)."""

SETUP_FILE: Final = "setup.py"
"""In the code folder, it makes the entry point a Python package (``_entry_point_type``)."""

# -- resourceconfig.json --------------------------------------------------------------------

HOST_PREFIX: Final = "algo-"
"""Hosts are ``algo-1`` … ``algo-N``, numbered across instance groups in request order."""

DEFAULT_INSTANCE_GROUP: Final = "homogeneousCluster"
"""The group name SageMaker writes when the job has no InstanceGroups."""

DEFAULT_NETWORK_INTERFACE: Final = "eth0"
"""``network_interface_name``; the toolkit defaults to it too."""

LOCAL_INSTANCE_TYPE: Final = "local"
"""What the toolkit assumes when resourceconfig.json has no ``current_instance_type``."""

# -- hyperparameters (params.py) ------------------------------------------------------------

SAGEMAKER_PREFIX: Final = "sagemaker_"
"""Hyperparameters with this prefix are the platform's, never passed to the user script."""

USER_PROGRAM_PARAM: Final = "sagemaker_program"
"""The entry point, relative to the code folder (``train.py``, ``run.sh``, a package module)."""

SUBMIT_DIR_PARAM: Final = "sagemaker_submit_directory"
"""Where the code came from (``s3://…/sourcedir.tar.gz``); becomes ``SM_MODULE_DIR``."""

ENABLE_METRICS_PARAM: Final = "sagemaker_enable_cloudwatch_metrics"
"""Reserved by the toolkit; ignored by it nowadays."""

REGION_NAME_PARAM: Final = "sagemaker_region"
"""The SDK's region; becomes ``SAGEMAKER_REGION``."""

LOG_LEVEL_PARAM: Final = "sagemaker_container_log_level"
"""Python logging level of the toolkit; becomes ``SM_LOG_LEVEL`` (default 20)."""

JOB_NAME_PARAM: Final = "sagemaker_job_name"
"""The SDK's job name; becomes ``SAGEMAKER_JOB_NAME``."""

DEFAULT_MODULE_NAME_PARAM: Final = "default_user_module_name"
"""Reserved by the toolkit although it has no ``sagemaker_`` prefix."""

TUNING_METRIC_PARAM: Final = "_tuning_objective_metric"
"""Added by hyperparameter tuning; reserved, never passed to the script."""

S3_OUTPUT_LOCATION_PARAM: Final = "sagemaker_s3_output"
"""Turns on the toolkit's sync of ``output/intermediate`` to S3."""

DISTRIBUTION_INSTANCE_GROUPS_PARAM: Final = "sagemaker_distribution_instance_groups"
"""Instance groups that take part in distributed training (heterogeneous clusters)."""

SAGEMAKER_HYPERPARAMETERS: Final = (
    USER_PROGRAM_PARAM,
    SUBMIT_DIR_PARAM,
    ENABLE_METRICS_PARAM,
    REGION_NAME_PARAM,
    LOG_LEVEL_PARAM,
    JOB_NAME_PARAM,
    DEFAULT_MODULE_NAME_PARAM,
    TUNING_METRIC_PARAM,
    S3_OUTPUT_LOCATION_PARAM,
)
"""``params.SAGEMAKER_HYPERPARAMETERS``: reserved, in neither SM_HPS nor SM_FRAMEWORK_PARAMS."""

DISTRIBUTION_FLAGS: Final = (
    "sagemaker_mpi_enabled",
    "sagemaker_parameter_server_enabled",
    "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled",
    "sagemaker_torch_distributed_enabled",
)
"""Any of these true puts the current group in the distribution groups (``environment.py``)."""

FRAMEWORK_PARAMS: Final = (
    *DISTRIBUTION_FLAGS,
    "sagemaker_mpi_num_of_processes_per_host",
    "sagemaker_mpi_num_processes",
    "sagemaker_mpi_custom_mpi_options",
    "sagemaker_distributed_dataparallel_custom_mpi_options",
    "sagemaker_network_interface_name",
    DISTRIBUTION_INSTANCE_GROUPS_PARAM,
    "sagemaker_instance_type",
)
"""The framework parameters the SDK sends; any other ``sagemaker_*`` name is one too."""

# -- environment variables the platform or the toolkit sets ---------------------------------

SM_PREFIX: Final = "SM_"
"""``mapping.to_env_vars`` names a variable ``SM_`` + the upper-cased property name."""

TRAINING_JOB_NAME_ENV: Final = "TRAINING_JOB_NAME"
"""Set by the platform in every training container (AWS docs)."""

TRAINING_JOB_ARN_ENV: Final = "TRAINING_JOB_ARN"
"""Set by the platform in every training container (AWS docs)."""

USER_PROGRAM_ENV: Final = "SAGEMAKER_PROGRAM"
"""Overrides the ``sagemaker_program`` hyperparameter for ``SM_MODULE_NAME``/entry point."""

SUBMIT_DIR_ENV: Final = "SAGEMAKER_SUBMIT_DIRECTORY"
"""Env twin of ``sagemaker_submit_directory``, read by the inference toolkits."""

JOB_NAME_ENV: Final = "SAGEMAKER_JOB_NAME"
"""Exported by the toolkit's Environment from ``sagemaker_job_name``."""

REGION_NAME_ENV: Final = "SAGEMAKER_REGION"
"""Exported by the toolkit's Environment from ``sagemaker_region`` or boto3's region."""

CURRENT_HOST_ENV: Final = "CURRENT_HOST"
"""Exported by the toolkit's Environment: this host's name."""

FRAMEWORK_MODULE_ENV: Final = "SAGEMAKER_TRAINING_MODULE"
"""Set by DLC images (``sagemaker_pytorch_container.training:main``); ``SM_FRAMEWORK_MODULE``."""

MP_PARAMETERS_ENV: Final = "SM_HP_MP_PARAMETERS"
"""Model-parallel settings; the toolkit's ``is_modelparallel_enabled`` reads it from the env."""

STUDIO_LOCAL_MODE_ENV: Final = "SM_STUDIO_LOCAL_MODE"
"""``true`` skips the toolkit's wait for every ``algo-N`` to resolve in DNS (``entry_point.py``)."""

S3_ENDPOINT_URL_ENV: Final = "S3_ENDPOINT_URL"
"""S3 endpoint the toolkit uses for sourcedir download and intermediate sync."""

AWS_REGION_ENV: Final = "AWS_REGION"
"""Set by SageMaker (and SDK local mode) in the container."""

AWS_DEFAULT_REGION_ENV: Final = "AWS_DEFAULT_REGION"
"""The name boto3 reads; set alongside ``AWS_REGION`` so user boto3 calls find a region."""

PYTHONPATH_ENV: Final = "PYTHONPATH"
"""The toolkit exports its ``sys.path``, whose first entry is the code folder."""

DEFAULT_LOG_LEVEL: Final = 20
"""``logging.INFO``: the toolkit's ``SM_LOG_LEVEL`` without ``sagemaker_container_log_level``."""
