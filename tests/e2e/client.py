# SPDX-License-Identifier: MIT
"""reactor-client in a pipe (echo "hello" | reactor-client ADDR) against reactor-serve over
one transport: the replies it prints, its exit status, and its errors.

    client.py --serve S --client C --transport T
"""

import os
import socket
import subprocess

from e2e_support import (GREETING, TIME_REPLY, default_bind, parse_args, run_cases, run_client,
                         running, temp_dir)


def main():
    args = parse_args(lambda p: p.add_argument("--transport", required=True))
    transport = args.transport
    stream = transport in ("tcp", "unix-stream")
    tmp = temp_dir()

    def serving(service):
        return running(args.serve, service, "--transport", transport,
                       "--bind", default_bind(transport, tmp.name))

    def client(server, stdin, timeout=1.0):
        return run_client(args.client, server.address_text, transport, stdin, timeout)

    def expect(server, stdin, stdout, timeout=1.0):
        status, out, err = client(server, stdin, timeout)
        assert (status, out, err) == (0, stdout, b""), \
            f"stdin {stdin!r}: status {status}, stdout {out!r}, stderr {err!r}; " \
            f"expected stdout {stdout!r}"

    def echo_hello():
        with serving("echo") as server:
            expect(server, b"hello\n", b"hello\n")
            server.stop(expect_served=1)

    def several_lines():
        lines = b"one\ntwo\n\nthree \xe9\n"
        with serving("upper") as server:
            expect(server, lines, lines.upper())
            server.stop(expect_served=1 if stream else 4)

    def last_line_without_newline():
        with serving("echo") as server:
            # A stream passes the bytes as they are; a reply datagram is printed as a line.
            expect(server, b"one\nno newline", b"one\nno newline" + (b"" if stream else b"\n"))
            server.stop()

    def time_stamps():
        with serving("time") as server:
            status, out, err = client(server, b"hello\n")
            assert status == 0 and TIME_REPLY.match(out) and err == b"", (status, out, err)
            server.stop(expect_served=1)

    def greeting():
        with serving("greet") as server:
            # A stream server greets first and closes; a datagram server greets each datagram.
            expect(server, b"" if stream else b"hi\n", GREETING)
            server.stop(expect_served=1)

    def stdin_is_a_file():
        # A regular file cannot be polled; the client reads it without the loop's help.
        path = os.path.join(tmp.name, "lines.txt")
        with open(path, "wb") as f:
            f.write(b"alpha\nbeta\n")
        with serving("echo") as server, open(path, "rb") as f:
            argv = [args.client, server.address_text, "--transport", transport]
            done = subprocess.run(argv, stdin=f, capture_output=True, timeout=30)
            assert (done.returncode, done.stdout, done.stderr) == (0, b"alpha\nbeta\n", b""), done
            server.stop()

    def silent_server():
        # Stream: a server that never closes; datagrams: a service that never replies.
        # Either way the client ends --timeout after the last thing it heard.
        if stream:
            family = socket.AF_INET if transport == "tcp" else socket.AF_UNIX
            with socket.socket(family, socket.SOCK_STREAM) as listener:
                listener.bind(("127.0.0.1", 0) if transport == "tcp"
                              else os.path.join(tmp.name, "silent.sock"))
                listener.listen()
                name = listener.getsockname()
                address = (f"127.0.0.1:{name[1]}" if transport == "tcp" else "unix:" + name)
                argv = [args.client, address, "--transport", transport, "--timeout", "0.3"]
                with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE) as proc:
                    try:
                        listener.settimeout(5)
                        conn, _ = listener.accept()
                        with conn:
                            conn.settimeout(5)
                            proc.stdin.write(b"hello\n")
                            proc.stdin.close()
                            assert conn.recv(100) == b"hello\n"
                            conn.sendall(b"reply\n")
                            status = proc.wait(timeout=10)
                            out, err = proc.stdout.read(), proc.stderr.read()
                            assert (status, out, err) == (0, b"reply\n", b""), (status, out, err)
                    finally:
                        proc.kill()
        else:
            with serving("print") as server:
                expect(server, b"one\ntwo\n", b"", timeout=0.2)
                server.stop(expect_served=2)

    def nobody_there():
        if transport in ("tcp", "udp"):
            kind = socket.SOCK_STREAM if stream else socket.SOCK_DGRAM
            with socket.socket(socket.AF_INET, kind) as probe:  # a port nobody listens on
                probe.bind(("127.0.0.1", 0))
                address = "127.0.0.1:%d" % probe.getsockname()[1]
        else:
            address = "unix:" + os.path.join(tmp.name, "nobody.sock")
        status, out, err = run_client(args.client, address, transport, b"hello\n", 1.0)
        lines = err.decode().splitlines()
        assert status == 1 and out == b"" and len(lines) == 1, (status, out, err)
        assert lines[0].startswith("reactor-client: "), lines

    def wrong_address():
        other = "unix:@nowhere" if transport in ("tcp", "udp") else "127.0.0.1:1"
        status, out, err = run_client(args.client, other, transport, b"hello\n")
        assert status == 2 and len(err.decode().splitlines()) == 1, (status, out, err)

    run_cases([
        ("echo 'hello' | reactor-client", echo_hello),
        ("several lines, one reply each", several_lines),
        ("a last line without its newline", last_line_without_newline),
        ("time stamps", time_stamps),
        ("the greeting", greeting),
        ("standard input from a regular file", stdin_is_a_file),
        ("a silent server: the client ends after --timeout", silent_server),
        ("nobody at the address: exit 1", nobody_there),
        ("an address of the wrong kind: exit 2", wrong_address),
    ])


if __name__ == "__main__":
    main()
