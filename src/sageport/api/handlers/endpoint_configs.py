"""SageMaker endpoint configuration operations; see :mod:`sageport.services.endpoint_configs`."""

from __future__ import annotations

from sageport.api.dispatch import Params, RequestContext, Result, operation


@operation("CreateEndpointConfig")
def create_endpoint_config(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.endpoint_configs.create(params)


@operation("DescribeEndpointConfig")
def describe_endpoint_config(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.endpoint_configs.describe(params)


@operation("ListEndpointConfigs")
def list_endpoint_configs(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.endpoint_configs.list(params)


@operation("DeleteEndpointConfig")
def delete_endpoint_config(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.endpoint_configs.delete(params)
