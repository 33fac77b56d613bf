"""Create a training job with plain boto3, the way the SageMaker API reference shows it.

Run against sageport:  eval "$(sageport env)" && python examples/train_boto3.py

boto3 reads AWS_ENDPOINT_URL, so every client below talks to sageport. The code is packed
as sourcedir.tar.gz and named by the sagemaker_program / sagemaker_submit_directory
hyperparameters, as the SDK does; the image URI selects the local PyTorch runtime.
"""

import io
import json
import tarfile
import time
from pathlib import Path

import boto3
import numpy as np

BUCKET = "sagemaker-sageport"  # the default bucket of `sageport env`; any bucket works
PREFIX = "examples/train-boto3"
JOB = f"train-boto3-{int(time.time())}"
REGION = boto3.session.Session().region_name
ROLE = "arn:aws:iam::000000000000:role/SageportExecutionRole"  # any role ARN is accepted

s3 = boto3.client("s3")
sm = boto3.client("sagemaker")
logs = boto3.client("logs")
if BUCKET not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
    s3.create_bucket(Bucket=BUCKET)

# 1. data and code into S3
rng = np.random.default_rng(0)
x = rng.normal(size=(128, 4)).astype("float32")
buf = io.BytesIO()
np.savez(buf, x=x, y=x @ np.array([[1.0], [2.0], [3.0], [4.0]], dtype="float32"))
s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/data/train.npz", Body=buf.getvalue())

code = io.BytesIO()
with tarfile.open(fileobj=code, mode="w:gz") as tar:
    tar.add(Path(__file__).parent / "jobs" / "train_torch.py", arcname="train_torch.py")
s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}/code/sourcedir.tar.gz", Body=code.getvalue())

# 2. the job
sm.create_training_job(
    TrainingJobName=JOB,
    RoleArn=ROLE,
    AlgorithmSpecification={
        "TrainingImage": f"763104351884.dkr.ecr.{REGION}.amazonaws.com/pytorch-training:2.1.0-cpu-py310",
        "TrainingInputMode": "File",
    },
    HyperParameters={
        "epochs": "2",
        "sagemaker_program": json.dumps("train_torch.py"),
        "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/{PREFIX}/code/sourcedir.tar.gz"),
    },
    InputDataConfig=[
        {
            "ChannelName": "train",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": f"s3://{BUCKET}/{PREFIX}/data/",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
    ],
    OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/{PREFIX}/output"},
    ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 10},
    StoppingCondition={"MaxRuntimeInSeconds": 600},
)

# 3. wait, then show the log and the model
while True:
    job = sm.describe_training_job(TrainingJobName=JOB)
    if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
        break
    time.sleep(1)
print("status:", job["TrainingJobStatus"], job.get("FailureReason", ""))
for stream in logs.describe_log_streams(
    logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{JOB}/"
)["logStreams"]:
    events = logs.get_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamName=stream["logStreamName"],
        startFromHead=True,
    )["events"]
    for event in events:
        print(event["message"])
print("model artifact:", job["ModelArtifacts"]["S3ModelArtifacts"])
assert job["TrainingJobStatus"] == "Completed"
