"""SageMaker processing-job operations → ``services.processing``."""

from __future__ import annotations

from sageport.api.dispatch import Params, RequestContext, Result, operation


@operation("CreateProcessingJob")
def create_processing_job(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.processing.create(params)


@operation("DescribeProcessingJob")
def describe_processing_job(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.processing.describe(params)


@operation("ListProcessingJobs")
def list_processing_jobs(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.processing.list(params)


@operation("StopProcessingJob")
def stop_processing_job(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.processing.stop(params)


@operation("DeleteProcessingJob")
def delete_processing_job(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.processing.delete(params)
