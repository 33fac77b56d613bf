"""A processing job on a GPU instance type with the SDK's ScriptProcessor.

Run against sageport:  eval "$(sageport env)" && python examples/process_gpu.py

The CSV files are staged at /opt/ml/processing/input/data before the script starts; what
the script writes to /opt/ml/processing/output is uploaded to S3 when it ends. "python3"
with a framework image URI means: the local PyTorch runtime. Set INSTANCE_TYPE to change it.
"""

import json
import os
import tempfile
from pathlib import Path

import boto3
import numpy as np
import sagemaker
from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor

session = sagemaker.Session()
region = session.boto_region_name

rng = np.random.default_rng(0)
with tempfile.TemporaryDirectory() as tmp:
    for i in range(3):
        np.savetxt(os.path.join(tmp, f"part-{i}.csv"), rng.normal(size=(10, 3)), delimiter=",")
    data_uri = session.upload_data(tmp, key_prefix="examples/process-gpu/data")

processor = ScriptProcessor(
    command=["python3"],
    image_uri=f"763104351884.dkr.ecr.{region}.amazonaws.com/pytorch-training:2.1.0-gpu-py310",
    instance_type=os.environ.get("INSTANCE_TYPE", "ml.g5.xlarge"),
    instance_count=1,
    sagemaker_session=session,
    base_job_name="process-gpu",
)
processor.run(
    code=str(Path(__file__).parent / "jobs" / "process.py"),
    inputs=[ProcessingInput(source=data_uri, destination="/opt/ml/processing/input/data")],
    outputs=[ProcessingOutput(source="/opt/ml/processing/output", output_name="summary")],
    logs=True,  # waits, printing the job's log
)

destination = processor.latest_job.describe()["ProcessingOutputConfig"]["Outputs"][0]["S3Output"][
    "S3Uri"
]
bucket, prefix = destination.removeprefix("s3://").split("/", 1)
body = boto3.client("s3").get_object(Bucket=bucket, Key=f"{prefix}/summary.json")["Body"].read()
print("summary from S3:", json.loads(body))
