"""The SageMaker training-container contract, without containers.

What a training process must find to believe it runs in a SageMaker container: the per-host
``/opt/ml`` folder (``paths``), the three config files (``config_files``), the ``SM_*``
variables (``environment``), how the user code is started (``entrypoint``), which local
Python stands in for a container image (``images``), and what every process sageport starts
(training, processing, model servers) begins its environment with (``process_env``), and what
a job's log says of its ``MetricDefinitions`` (``metrics``: read by the job runner and by
DescribeTrainingJob). Pure
functions over the validated ``CreateTrainingJob`` request; the few that touch the disk say
so. Imports only the stdlib.
"""
