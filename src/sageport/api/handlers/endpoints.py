"""SageMaker endpoint operations → ``services.endpoints``."""

from __future__ import annotations

from sageport.api.dispatch import Params, RequestContext, Result, operation


@operation("CreateEndpoint")
def create_endpoint(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.endpoints.create(params)


@operation("DescribeEndpoint")
def describe_endpoint(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.endpoints.describe(params)


@operation("ListEndpoints")
def list_endpoints(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.endpoints.list(params)


@operation("UpdateEndpoint")
def update_endpoint(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.endpoints.update(params)


@operation("UpdateEndpointWeightsAndCapacities")
def update_endpoint_weights_and_capacities(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.endpoints.update_weights(params)


@operation("DeleteEndpoint")
def delete_endpoint(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.endpoints.delete(params)
