"""Starting the workbench server: the listening socket (a port in use is a one-line error) and uvicorn."""
from __future__ import annotations

import errno
import ipaddress
import socket

from ..errors import SeglabError


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def open_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one), or a :class:`SeglabError`."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise SeglabError(f"--host {host!r}: not an address of this machine") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise SeglabError(f"port {port} on {host} is in use (another seglab serve?); choose another with "
                              "--port") from None
        raise SeglabError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def run_server(application, sock: socket.socket, log_level: str = "warning") -> None:
    """Serve ``application`` on ``sock`` with uvicorn until Ctrl-C / SIGTERM (then stop running jobs)."""
    import uvicorn

    config = uvicorn.Config(application, log_level=log_level, access_log=False, timeout_graceful_shutdown=3)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        jobs = getattr(application.state, "jobs", None)
        if jobs is not None:
            jobs.shutdown()
        sam = getattr(application.state, "sam", None)
        if sam is not None:
            sam.wait_idle(30)
