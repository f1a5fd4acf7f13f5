"""A real WordPress on 127.0.0.1 for the tests: Debian's package, a throwaway MariaDB.

`WordPressServer(folder).start()` puts everything under `folder`: a MariaDB data directory
made by `mariadb-install-db` and served on a free loopback port, a copy of
`/usr/share/wordpress` with its own `wp-config.php` (that database, `WP_ENVIRONMENT_TYPE`
`local` so application passwords work over plain http, no outgoing HTTP, no cron), and
`php -S` serving the copy with four workers. WordPress is installed from PHP (`wp_install`)
with an administrator and an application password, and pretty permalinks so the REST API
answers under `/wp-json/`. `stop()` ends `php -S` by its process group (its workers outlive
the parent) and MariaDB, and removes the copy and the data (the logs stay).

Needs Debian's `wordpress`, `mariadb-server`, `php-cli` and `php-mysql`
(`scripts/install-system-packages.sh` installs them).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import requests

HOST = "127.0.0.1"
WORDPRESS_SOURCE = Path("/usr/share/wordpress")
MARIADBD = "/usr/sbin/mariadbd"
READY_TIMEOUT = 60.0
ADMIN_USER = "q2c-admin"
ADMIN_DISPLAY_NAME = "Finance Content Editor"

_WP_CONFIG = """<?php
define('DB_NAME', 'wordpress');
define('DB_USER', 'wordpress');
define('DB_PASSWORD', '{db_password}');
define('DB_HOST', '{host}:{db_port}');
define('DB_CHARSET', 'utf8mb4');
define('DB_COLLATE', '');
{salts}
$table_prefix = 'wp_';
define('WP_HOME', '{url}');
define('WP_SITEURL', '{url}');
define('WP_ENVIRONMENT_TYPE', 'local');
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('DISABLE_WP_CRON', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
define('WP_DEBUG', false);
if (!defined('ABSPATH')) {{
    define('ABSPATH', __DIR__ . '/');
}}
require_once ABSPATH . 'wp-settings.php';
"""

_SALT_NAMES = ("AUTH_KEY", "SECURE_AUTH_KEY", "LOGGED_IN_KEY", "NONCE_KEY", "AUTH_SALT",
               "SECURE_AUTH_SALT", "LOGGED_IN_SALT", "NONCE_SALT")

# Run with `php -r` in the site folder: installs WordPress, turns on pretty permalinks and
# prints the administrator's new application password as JSON.
_INSTALL_PHP = """
define('WP_INSTALLING', true);
require './wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
$result = wp_install('q2c test site', '{user}', 'content@northwind.example', false, '',
                     wp_generate_password(24));
$user = get_user_by('id', $result['user_id']);
wp_update_user(['ID' => $user->ID, 'display_name' => '{display_name}']);
update_option('permalink_structure', '/%postname%/');
flush_rewrite_rules(false);
$created = WP_Application_Passwords::create_new_application_password(
    $user->ID, ['name' => 'q2c tests']);
if (is_wp_error($created)) {{
    fwrite(STDERR, $created->get_error_message());
    exit(1);
}}
echo json_encode(['user' => '{user}', 'password' => $created[0]]);
"""


class WordPressServer:
    """Debian's WordPress and a MariaDB of its own, both on loopback, under `folder`."""

    def __init__(self, folder: Path, config: Mapping[str, str] | None = None,
                 mu_plugins: Mapping[str, str] | None = None) -> None:
        self.folder = Path(folder)
        self.config = dict(config or {})
        self.mu_plugins = dict(mu_plugins or {})
        self.db_port = 0
        self.port = 0
        self.user = ADMIN_USER
        self.app_password = ""
        self._mariadb: subprocess.Popen | None = None
        self._php: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def auth(self) -> tuple[str, str]:
        return (self.user, self.app_password)

    def start(self) -> WordPressServer:
        try:
            self._start_mariadb()
            site = self._copy_site()
            self._install(site)
            self._start_php(site)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for process in (self._php, self._mariadb):
            if process is None or process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self._php = self._mariadb = None
        # The copy of WordPress and the database are ~85 MB; the logs stay for a look.
        for name in ("site", "mariadb"):
            shutil.rmtree(self.folder / name, ignore_errors=True)

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """A REST API call as the administrator, for the test to act as a content owner."""
        return requests.request(method, f"{self.url}/wp-json/{path.lstrip('/')}",
                                auth=self.auth, timeout=30, **kwargs)

    def _start_mariadb(self) -> None:
        data = self.folder / "mariadb"
        data.mkdir(parents=True)
        self.db_password = secrets.token_hex(12)
        init = self.folder / "init.sql"
        init.write_text(
            "CREATE DATABASE IF NOT EXISTS wordpress CHARACTER SET utf8mb4;\n"
            f"CREATE USER IF NOT EXISTS 'wordpress'@'{HOST}' IDENTIFIED BY "
            f"'{self.db_password}';\n"
            f"GRANT ALL ON wordpress.* TO 'wordpress'@'{HOST}';\n"
        )
        _run(["mariadb-install-db", "--no-defaults", f"--datadir={data}", "--user=root",
              "--auth-root-authentication-method=normal", "--skip-test-db"],
             self.folder / "mariadb-install.log")
        self.db_port = _free_port()
        log = open(self.folder / "mariadb.log", "wb")  # noqa: SIM115 (kept for the process)
        self._mariadb = subprocess.Popen(
            [MARIADBD, "--no-defaults", f"--datadir={data}", "--user=root",
             f"--bind-address={HOST}", f"--port={self.db_port}",
             f"--socket={self.folder / 'mariadb.sock'}",
             f"--pid-file={self.folder / 'mariadb.pid'}", "--skip-name-resolve",
             "--skip-log-bin", f"--init-file={init}", "--innodb-buffer-pool-size=32M",
             "--innodb-log-file-size=8M", "--skip-innodb-doublewrite",
             "--innodb-flush-log-at-trx-commit=0"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        _wait_for_port(self.db_port, self._mariadb, self.folder / "mariadb.log")

    def _copy_site(self) -> Path:
        site = self.folder / "site"
        shutil.copytree(WORDPRESS_SOURCE, site, symlinks=True,
                        ignore=shutil.ignore_patterns("languages", ".htaccess"))
        self.port = _free_port()
        salts = "\n".join(f"define('{name}', '{secrets.token_hex(32)}');"
                          for name in _SALT_NAMES)
        salts += "".join(f"\ndefine({_php_string(name)}, {_php_string(value)});"
                         for name, value in self.config.items())
        (site / "wp-config.php").write_text(_WP_CONFIG.format(
            db_password=self.db_password, host=HOST, db_port=self.db_port, salts=salts,
            url=self.url))
        if self.mu_plugins:
            plugins = site / "wp-content" / "mu-plugins"
            plugins.mkdir()
            for name, source in self.mu_plugins.items():
                (plugins / f"{name}.php").write_text(source)
        return site

    def _install(self, site: Path) -> None:
        script = _INSTALL_PHP.format(user=ADMIN_USER, display_name=ADMIN_DISPLAY_NAME)
        env = {**os.environ, "HTTP_HOST": f"{HOST}:{self.port}"}
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            done = subprocess.run(["php", "-r", script], cwd=site, env=env,
                                  capture_output=True, text=True, timeout=120)
            output = done.stdout.strip()
            if done.returncode == 0 and output.startswith("{"):
                break
            # MariaDB runs its init file before it takes connections; a refused
            # connection this early is worth another try.
            if time.monotonic() > deadline or "Error establishing" not in output:
                raise RuntimeError(
                    f"installing WordPress in {site} failed (exit {done.returncode}): "
                    f"{output[-2000:]} {done.stderr[-2000:]}")
            time.sleep(0.2)
        self.app_password = json.loads(output[output.index("{"):])["password"]

    def _start_php(self, site: Path) -> None:
        log = open(self.folder / "php.log", "wb")  # noqa: SIM115 (kept for the process)
        self._php = subprocess.Popen(
            ["php", "-S", f"{HOST}:{self.port}", "-t", str(site)], cwd=site,
            env={**os.environ, "PHP_CLI_SERVER_WORKERS": "4"},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            try:
                if requests.get(f"{self.url}/wp-json/", timeout=5).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            if self._php.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"php -S did not serve WordPress on {self.url}; see "
                                   f"{self.folder / 'php.log'}")
            time.sleep(0.05)


def _php_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _run(command: list[str], log: Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    log.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed (exit {done.returncode}); see {log}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"MariaDB did not listen on {HOST}:{port}; see {log}")
        time.sleep(0.05)
