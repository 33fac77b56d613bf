"""CloudWatch Logs read operations (botocore's ``logs`` model); see ``services.logs``."""

from __future__ import annotations

from sageport.api.dispatch import Params, RequestContext, Result, operation


@operation("DescribeLogGroups")
def describe_log_groups(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.logs.describe_log_groups(params)


@operation("DescribeLogStreams")
def describe_log_streams(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.logs.describe_log_streams(params)


@operation("GetLogEvents")
def get_log_events(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.logs.get_log_events(params)


@operation("FilterLogEvents")
def filter_log_events(ctx: RequestContext, params: Params) -> Result:
    return ctx.services.logs.filter_log_events(params)
