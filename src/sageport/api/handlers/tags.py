"""SageMaker tag operations; see :mod:`sageport.services.tags`."""

from __future__ import annotations

from sageport.api.dispatch import Params, RequestContext, Result, operation


@operation("AddTags")
def add_tags(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.tags.add_tags(params)


@operation("ListTags")
def list_tags(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.tags.list_tags(params)


@operation("DeleteTags")
def delete_tags(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.tags.delete_tags(params)
