"""SageMaker training-job operations → ``services.training``."""

from __future__ import annotations

from sageport.api.dispatch import Params, RequestContext, Result, operation


@operation("CreateTrainingJob")
def create_training_job(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.training.create(params)


@operation("DescribeTrainingJob")
def describe_training_job(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.training.describe(params)


@operation("ListTrainingJobs")
def list_training_jobs(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.training.list(params)


@operation("StopTrainingJob")
def stop_training_job(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.training.stop(params)


@operation("DeleteTrainingJob")
def delete_training_job(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.training.delete(params)
