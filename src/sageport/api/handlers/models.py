"""SageMaker model operations; the work is in :mod:`sageport.services.models`."""

from __future__ import annotations

from sageport.api.dispatch import Params, RequestContext, Result, operation


@operation("CreateModel")
def create_model(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.models.create(params)


@operation("DescribeModel")
def describe_model(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.models.describe(params)


@operation("ListModels")
def list_models(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.models.list(params)


@operation("DeleteModel")
def delete_model(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.models.delete(params)
