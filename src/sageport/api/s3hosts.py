"""Which bucket an S3 request's ``Host`` names: virtual-hosted-style addressing.

A client in virtual-hosted style (boto3 with ``addressing_style='virtual'``, or ``auto`` for
some endpoints) sends ``PUT /key`` with ``Host: bucket.localhost:5757``; read path-style,
that is a CreateBucket of a bucket named after the key. So the Host is read before the path,
and :meth:`VirtualHosts.bucket` sorts every request into one of three kinds:

- **path-style** (``None``): the Host is one of the server's own names (``localhost``, its
  ``host`` setting, the machine's host name, ``server_names``), an IP address, a single label
  (a container name), or an S3 endpoint name itself (``s3.localhost``, ``s3.amazonaws.com``);
- **virtual-hosted** (the bucket): ``<bucket>.<own name>``, ``<bucket>.s3.<own name>``,
  ``<bucket>.<IPv4 address>`` (what botocore makes of a dotted bucket on an IP endpoint), or
  ``<bucket>.s3.<anything>`` / ``<bucket>.s3-<region>.<anything>`` (AWS's own forms);
- **refused** (:class:`~sageport.errors.InvalidRequestS3`): any other name of several labels.
  Its first label could be a bucket or part of a name this server does not know it has, and
  guessing either way could misread the request; the error says how to add the name.

SigV4 signs the Host header, so the bucket taken from it is as authenticated as the path.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

from sageport.errors import InvalidRequestS3
from sageport.settings import Settings

#: names every server answers to, whatever its settings say
ALWAYS_OWN = ("localhost", "localhost.localdomain")
#: the label that marks an S3 endpoint in AWS's host names (``s3``, ``s3-us-west-2``)
S3_LABEL = "s3"
#: an AWS region's name (``us-east-1``, ``us-gov-west-1``, ``ap-southeast-2``)
REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


def hostname(host: str) -> str:
    """The Host header's name: lower-case, without port, IPv6 brackets or a trailing dot."""
    name = host.strip().lower()
    if name.startswith("["):
        return name[1:].partition("]")[0]
    if name.count(":") == 1:
        name = name.partition(":")[0]
    return name.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _region(label: str) -> bool:
    return REGION.fullmatch(label) is not None


def _s3_label(label: str) -> bool:
    """An S3 endpoint label of AWS's host names: ``s3``, ``s3-us-west-2``, ``s3-external-1``
    (not ``s3-backups``, which is a bucket's name)."""
    if label == S3_LABEL:
        return True
    rest = label.removeprefix(S3_LABEL + "-")
    return rest != label and (_region(rest) or rest == "external-1")


class VirtualHosts:
    """The rule of the module docstring for a server known by ``names`` (and
    :data:`ALWAYS_OWN`); IP addresses need not be listed."""

    def __init__(self, names: Iterable[str]) -> None:
        own = {hostname(n) for n in (*ALWAYS_OWN, *names)}
        own = {n for n in own if n and not _is_ip(n)}
        self.names = tuple(sorted(own, key=lambda n: (-len(n), n)))  # longest suffix first

    @classmethod
    def of(cls, settings: Settings) -> VirtualHosts:
        """The names of a server on ``settings``: its ``host``, the machine's host name (no
        DNS lookup: a slow resolver must not delay the start) and ``server_names``."""
        return cls([settings.host, socket.gethostname(), *settings.server_names])

    def bucket(self, host: str) -> str | None:
        """The bucket ``host`` addresses, None for a path-style request; raises
        InvalidRequest for a name that is neither (module docstring)."""
        name = hostname(host)
        if not name or _is_ip(name) or "." not in name or name in self.names:
            return None
        labels = name.split(".")
        for own in self.names:
            if name.endswith("." + own):
                return self._before_endpoint(labels[: -(own.count(".") + 1)])
        if len(labels) > 4 and _is_ip(".".join(labels[-4:])):
            return ".".join(labels[:-4])
        if _s3_label(labels[0]):
            return None  # the S3 endpoint itself: s3.amazonaws.com, s3.us-east-1.<...>
        for i, label in enumerate(labels[1:], 1):
            if _s3_label(label):
                return ".".join(labels[:i])
        raise InvalidRequestS3(
            f"The Host {host!r} is not a name of this server ({', '.join(self.names)}, or an "
            f"IP address), so sageport cannot tell whether {labels[0]!r} is a bucket "
            "(virtual-hosted-style) or part of the server's name. Reach the server by one of "
            "those names or by IP address (path-style: boto3 "
            "Config(s3={'addressing_style': 'path'})), or add the name to server_names in "
            "sageport.toml: then requests to it are path-style, and to <bucket>.<name> "
            "virtual-hosted."
        )

    @staticmethod
    def _before_endpoint(labels: list[str]) -> str | None:
        """The bucket in the labels before an own name: all of them, less a trailing
        ``s3`` or ``s3.<region>``; None when they are only that (the endpoint's own name)."""
        if labels[0] == S3_LABEL and (
            len(labels) == 1 or (len(labels) == 2 and _region(labels[1]))
        ):
            return None  # s3.localhost, s3.us-east-1.localhost: path-style
        if len(labels) > 1 and labels[-1] == S3_LABEL:
            return ".".join(labels[:-1])
        if len(labels) > 2 and labels[-2] == S3_LABEL and _region(labels[-1]):
            return ".".join(labels[:-2])
        return ".".join(labels)
