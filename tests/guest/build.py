"""Build (and cache) the tiny cooperating x86_64 Linux guest used by the tests.

Recipe (standard library + apt-get/apt-cache/dpkg-deb only, works as non-root):

1. resolve the versioned kernel package from the metapackage
   ``linux-image-cloud-amd64`` (its ``Depends: linux-image-*-cloud-amd64 (= V)``)
   and the candidate version of ``busybox-static`` with one offline
   ``apt-cache show`` run (~1.7 s on Debian images without apt's binary cache),
   memoized in ``<cache>/resolution.json`` while apt's lists/config are unchanged;
2. if the cache already holds a complete build for that resolution, use it;
3. otherwise ``apt-get download`` both packages (kept in the cache, so editing
   init.sh does not re-download), ``dpkg-deb -x`` them, take ``boot/vmlinuz-*``,
   build an initramfs tree (busybox, 4 modules, /init = init.sh, acpid power
   button handler), pack it with busybox's own ``cpio -o -H newc -R 0:0`` and
   gzip it.

Cache layout (``$VIRTDECK_GUEST_CACHE``, else ``$XDG_CACHE_HOME/virtdeck/guest``,
else ``~/.cache/virtdeck/guest``)::

    <cache>/.lock                          fcntl lock, held while building
    <cache>/resolution.json                memo of the last apt resolution
    <cache>/debs/<pkg>_<version>.deb       downloaded packages
    <cache>/<key>/{vmlinuz,initramfs.gz,kernel-version,meta.json}

``<key>`` is the kernel package version plus a short sha256 over init.sh, the
recipe version and the exact package set.  A build is assembled in a temporary
directory under the cache and renamed into place, so a ``<key>`` directory is
always complete.

Run ``python -m tests.guest.build`` from the repository root to build (or find)
the image and print its paths.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import glob
import gzip
import hashlib
import json
import logging
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

if __package__ in (None, ""):  # executed as a script: make ``tests.guest`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.guest import CMDLINE, GuestBuildError, GuestImage

log = logging.getLogger("virtdeck.tests.guest")

#: Bump whenever the recipe below changes in a way that changes the output.
RECIPE_VERSION = 2

META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
#: insmod order matters: pvpanic-mmio depends on pvpanic; the virtio chain (virtio-pci
#: for the devices, virtio_net for NICs, virtio_console for channels) in dependency order.
MODULES: tuple[str, ...] = (
    "pvpanic",
    "pvpanic-mmio",
    "evdev",
    "button",
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_console",
)
#: Where the modules usually live below lib/modules/<kver>/ (searched first).
_MODULE_HINTS = {
    "pvpanic": "kernel/drivers/misc/pvpanic",
    "pvpanic-mmio": "kernel/drivers/misc/pvpanic",
    "evdev": "kernel/drivers/input",
    "button": "kernel/drivers/acpi",
    "virtio_ring": "kernel/drivers/virtio",
    "virtio": "kernel/drivers/virtio",
    "virtio_pci_modern_dev": "kernel/drivers/virtio",
    "virtio_pci_legacy_dev": "kernel/drivers/virtio",
    "virtio_pci": "kernel/drivers/virtio",
    "failover": "kernel/net/core",
    "net_failover": "kernel/drivers/net",
    "virtio_net": "kernel/drivers/net",
    "virtio_console": "kernel/drivers/char",
}
INIT_SH = Path(__file__).with_name("init.sh")
POWER_BUTTON_HANDLER = "#!/bin/sh\npoweroff -f\n"
#: Fixed mtime for everything in the initramfs (reproducible output).
_EPOCH = 946684800  # 2000-01-01

#: Builds kept in the cache (newest first); older ones are removed after a build.
KEEP_BUILDS = 4
_COMPLETE_FILES = ("vmlinuz", "initramfs.gz", "kernel-version", "meta.json")
_APT_ENV = {"LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}


@dataclasses.dataclass(frozen=True)
class Resolution:
    """What apt would give us right now."""

    kernel_package: str
    kernel_package_version: str
    busybox_version: str

    def recipe_hash(self, init_sh: bytes) -> str:
        h = hashlib.sha256()
        h.update(f"recipe={RECIPE_VERSION}\n".encode())
        h.update(f"kernel={self.kernel_package}={self.kernel_package_version}\n".encode())
        h.update(f"busybox={self.busybox_version}\n".encode())
        h.update(f"modules={','.join(MODULES)}\n".encode())
        h.update(init_sh)
        return h.hexdigest()[:12]

    def key(self, init_sh: bytes) -> str:
        return f"{_safe(self.kernel_package_version)}-{self.recipe_hash(init_sh)}"


class _AptError(GuestBuildError):
    """apt could not resolve or download something (lists missing or outdated?)."""


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def cache_root() -> Path:
    env = os.environ.get("VIRTDECK_GUEST_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "virtdeck" / "guest"


def _run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    stdin_data: bytes | None = None,
    what: str | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a command, raise GuestBuildError (with its output) if it fails."""
    args = [os.fspath(a) for a in argv]
    env = {**os.environ, **_APT_ENV}
    try:
        proc = subprocess.run(
            args, cwd=cwd, input=stdin_data, capture_output=True, env=env, check=False
        )
    except OSError as exc:
        raise GuestBuildError(f"cannot run {args[0]!r}: {exc}") from exc
    if proc.returncode != 0:
        out = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise GuestBuildError(
            f"{what or args[0]} failed (rc {proc.returncode}): {' '.join(args)}\n{out}"
        )
    return proc


def _need_tool(name: str, package: str) -> None:
    if shutil.which(name) is None:
        raise GuestBuildError(
            f"{name!r} not found on PATH; the tiny test guest needs it (Debian package {package})"
        )


# --------------------------------------------------------------------------- apt


def _apt_cache_show(packages: Sequence[str]) -> dict[str, dict[str, str]]:
    """``apt-cache show --no-all-versions`` (candidate versions) -> {package: fields}."""
    _need_tool("apt-cache", "apt")
    try:
        out = _run(["apt-cache", "show", "--no-all-versions", *packages], what="apt-cache show")
    except GuestBuildError as exc:
        raise _AptError(str(exc)) from exc
    found: dict[str, dict[str, str]] = {}
    for stanza in out.stdout.decode(errors="replace").split("\n\n"):
        fields = dict(
            re.findall(r"^(Package|Version|Depends):\s*(.*?)\s*$", stanza, flags=re.MULTILINE)
        )
        if "Package" in fields and "Version" in fields:
            found.setdefault(fields["Package"], fields)
    missing = [p for p in packages if p not in found]
    if missing:
        raise _AptError(f"apt-cache show gave no candidate version for {', '.join(missing)}")
    return found


def resolve() -> Resolution:
    """Resolve the kernel and busybox packages with apt-cache (offline).

    The versioned kernel package is the metapackage's ``Depends:
    linux-image-*-cloud-amd64`` (what ``apt-cache depends`` shows); its version
    is pinned there as ``(= <version>)``.  One apt-cache run where possible:
    without a binary package cache (Debian docker images disable it) each run
    parses all package lists, ~1.7 s here.
    """
    info = _apt_cache_show([META_PACKAGE, BUSYBOX_PACKAGE])
    m = re.search(
        r"(?:^|[,|]\s*)(linux-image-\S+-cloud-amd64)(?:\s*\(\s*=\s*([^)\s]+)\s*\))?",
        info[META_PACKAGE].get("Depends", ""),
    )
    if m is None:
        raise _AptError(
            f"{META_PACKAGE} {info[META_PACKAGE]['Version']} depends on no "
            "linux-image-*-cloud-amd64 package"
        )
    kernel_package, kernel_version = m.group(1), m.group(2)
    if kernel_version is None:
        kernel_version = _apt_cache_show([kernel_package])[kernel_package]["Version"]
    return Resolution(kernel_package, kernel_version, info[BUSYBOX_PACKAGE]["Version"])


#: What apt's candidate choice depends on; if none of it changed since the last
#: resolution, the memo in the cache dir is reused and apt-cache is not run.
_APT_STATE = (
    "/var/lib/apt/lists/*",
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d/*",
    "/etc/apt/preferences",
    "/etc/apt/preferences.d/*",
    "/etc/apt/apt.conf",
    "/etc/apt/apt.conf.d/*",
    "/var/lib/dpkg/status",
)


def _apt_fingerprint() -> str:
    h = hashlib.sha256()
    h.update(f"{RECIPE_VERSION}\n".encode())
    for pattern in _APT_STATE:
        for name in sorted(glob.glob(pattern)):
            if os.path.basename(name) == "lock":
                continue
            try:
                st = os.stat(name)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                h.update(f"{name} {st.st_size} {st.st_mtime_ns} {st.st_ino}\n".encode())
    return h.hexdigest()


def resolve_cached(root: Path) -> Resolution:
    """``resolve()``, memoized in ``<root>/resolution.json`` while apt's state
    (lists, sources, preferences, dpkg status) is unchanged."""
    if os.environ.get("APT_CONFIG"):  # lists may live elsewhere: no memo
        return resolve()
    memo = root / "resolution.json"
    fingerprint = _apt_fingerprint()
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        data = json.loads(memo.read_text())
        if data["fingerprint"] == fingerprint:
            return Resolution(**data["resolution"])
    res = resolve()
    with contextlib.suppress(OSError):
        tmp = root / f".resolution.{os.getpid()}.tmp"
        tmp.write_text(
            json.dumps({"fingerprint": fingerprint, "resolution": dataclasses.asdict(res)})
        )
        os.replace(tmp, memo)
    return res


def _deb_path(debs: Path, package: str, version: str) -> Path:
    return debs / f"{package}_{_safe(version)}.deb"


def _download(root: Path, wanted: Sequence[tuple[str, str]]) -> list[Path]:
    """Return the cached .debs of (package, version)s, downloading the missing
    ones with a single ``apt-get download`` (each apt run costs ~1.5 s here)."""
    debs = root / "debs"
    targets = [_deb_path(debs, p, v) for p, v in wanted]
    missing = [(p, v) for (p, v), t in zip(wanted, targets, strict=True) if not t.is_file()]
    if not missing:
        return targets
    debs.mkdir(parents=True, exist_ok=True)
    _need_tool("apt-get", "apt")
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        argv = ["apt-get", "download", *(f"{p}={v}" for p, v in missing)]
        if os.geteuid() == 0:
            # Root: apt would otherwise try to drop to _apt, which cannot
            # write our private temp dir, and complain about it.
            argv[1:1] = ["-o", "APT::Sandbox::User=root"]
        try:
            _run(argv, cwd=Path(tmp), what="apt-get download")
        except GuestBuildError as exc:
            raise _AptError(str(exc)) from exc
        for package, version in missing:
            got = sorted(Path(tmp).glob(f"{package}_*.deb"))
            if len(got) != 1:
                raise GuestBuildError(f"apt-get download {package}={version} produced {got}")
            os.replace(got[0], _deb_path(debs, package, version))
    return targets


def _apt_update() -> None:
    log.warning("apt lists missing or outdated; running `apt-get update` once")
    _run(["apt-get", "update"], what="apt-get update")


# ------------------------------------------------------------------------- build


def _find_module(moddir: Path, name: str) -> Path | None:
    suffixes = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
    hint = moddir / _MODULE_HINTS.get(name, "kernel")
    for base in (hint, moddir):
        for suffix in suffixes:
            found = sorted(base.rglob(name + suffix)) if base.is_dir() else []
            if found:
                return found[0]
    return None


def _module_builtin(moddir: Path, name: str) -> bool:
    builtin = moddir / "modules.builtin"
    if not builtin.is_file():
        return False
    names = {Path(line.strip()).name.split(".ko")[0] for line in builtin.read_text().splitlines()}
    # modules.builtin uses the file names (with '-' as in the source tree).
    return name in names or name.replace("-", "_") in names


def _read_module(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".ko"):
        return data
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        for tool in ("zstd", "unzstd"):
            if shutil.which(tool):
                argv = [tool, "-d", "-c", "-q", os.fspath(path)]
                return _run(argv, what=f"{tool} (decompress {path.name})").stdout
        raise GuestBuildError(f"{path.name} is zstd-compressed; install the zstd tool")
    raise GuestBuildError(f"unknown module format: {path}")


def _find_moddir(kroot: Path, kver: str) -> Path:
    for rel in ("lib/modules", "usr/lib/modules"):
        cand = kroot / rel / kver
        if cand.is_dir():
            return cand
    raise GuestBuildError(f"no lib/modules/{kver} in the kernel package")


def _make_tree(tree: Path, busybox: Path, moddir: Path, init_sh: bytes) -> None:
    for d in (
        "bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "run",
        "root", "var/log", "var/run", "etc/acpi/PWRF", "lib/modules",
    ):  # fmt: skip
        (tree / d).mkdir(parents=True, exist_ok=True)
    for path in [tree, *tree.rglob("*")]:
        path.chmod(0o755)  # independent of the umask
    (tree / "tmp").chmod(0o1777)
    shutil.copyfile(busybox, tree / "bin/busybox")
    (tree / "bin/busybox").chmod(0o755)
    (tree / "bin/sh").symlink_to("busybox")
    (tree / "init").write_bytes(init_sh)
    (tree / "init").chmod(0o755)
    handler = tree / "etc/acpi/PWRF/00000080"
    handler.write_text(POWER_BUTTON_HANDLER)
    handler.chmod(0o755)
    for name in MODULES:
        found = _find_module(moddir, name)
        if found is None:
            if _module_builtin(moddir, name):
                log.info("module %s is built into the kernel", name)
                continue
            raise GuestBuildError(f"kernel module {name}.ko not found under {moddir}")
        dest = tree / "lib/modules" / f"{name}.ko"
        dest.write_bytes(_read_module(found))
        dest.chmod(0o644)
    for path in [tree, *tree.rglob("*")]:
        os.utime(path, (_EPOCH, _EPOCH), follow_symlinks=False)


def _pack(tree: Path, busybox: Path) -> bytes:
    """cpio (newc, owned by root) + gzip -9 of the tree, using busybox's cpio."""
    names = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*"))
    listing = "".join(f"{n}\n" for n in names).encode()
    argv: list[str | os.PathLike[str]] = [busybox, "cpio", "-o", "-H", "newc", "-R", "0:0"]
    argv += ["--renumber-inodes", "--ignore-devno"]  # reproducible output
    cpio = _run(argv, cwd=tree, stdin_data=listing, what="busybox cpio").stdout
    return gzip.compress(cpio, compresslevel=9, mtime=0)


def _build(root: Path, res: Resolution, init_sh: bytes, key: str) -> None:
    """Build <root>/<key> (caller holds the lock)."""
    _need_tool("dpkg-deb", "dpkg")
    kdeb, bdeb = _download(
        root,
        [(res.kernel_package, res.kernel_package_version), (BUSYBOX_PACKAGE, res.busybox_version)],
    )
    work = Path(tempfile.mkdtemp(dir=root, prefix=".build-"))
    try:
        kroot, broot, tree, out = (work / n for n in ("kernel", "busybox", "tree", "out"))
        _run(["dpkg-deb", "-x", kdeb, kroot], what="dpkg-deb -x (kernel)")
        _run(["dpkg-deb", "-x", bdeb, broot], what="dpkg-deb -x (busybox)")
        vmlinuz = sorted((kroot / "boot").glob("vmlinuz-*"))
        if len(vmlinuz) != 1:
            raise GuestBuildError(f"expected one boot/vmlinuz-* in {kdeb.name}, got {vmlinuz}")
        kver = vmlinuz[0].name.removeprefix("vmlinuz-")
        moddir = _find_moddir(kroot, kver)
        busybox = broot / "bin/busybox"
        if not busybox.is_file():
            raise GuestBuildError(f"no bin/busybox in {bdeb.name}")
        _make_tree(tree, busybox, moddir, init_sh)
        initramfs = _pack(tree, busybox)
        out.mkdir()
        shutil.copyfile(vmlinuz[0], out / "vmlinuz")
        (out / "initramfs.gz").write_bytes(initramfs)
        (out / "kernel-version").write_text(kver + "\n")
        meta = {
            **dataclasses.asdict(res),
            "kernel_version": kver,
            "recipe_version": RECIPE_VERSION,
            "init_sha256": hashlib.sha256(init_sh).hexdigest(),
            "modules": list(MODULES),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        # meta.json last: it marks the build as complete.
        (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        dest = root / key
        if dest.exists():  # incomplete leftover (e.g. files deleted by hand)
            shutil.rmtree(dest)
        os.rename(out, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    # Drop .debs of other versions: they only serve rebuilds of the current ones.
    keep = {
        _deb_path(root / "debs", res.kernel_package, res.kernel_package_version),
        _deb_path(root / "debs", BUSYBOX_PACKAGE, res.busybox_version),
    }
    for deb in (root / "debs").glob("*.deb"):
        if deb not in keep:
            deb.unlink(missing_ok=True)
    _prune_builds(root, keep=KEEP_BUILDS)


def _prune_builds(root: Path, keep: int) -> None:
    """Keep the ``keep`` newest builds (other init.sh versions, older kernels)."""
    builds = [p for p in root.iterdir() if not p.name.startswith(".") and _complete(p)]
    builds.sort(key=lambda p: (p / "meta.json").stat().st_mtime, reverse=True)
    for old in builds[keep:]:
        log.info("removing old guest build %s", old.name)
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------- cache


def _complete(path: Path) -> bool:
    return all((path / f).is_file() for f in _COMPLETE_FILES)


def _image(path: Path) -> GuestImage:
    kver = (path / "kernel-version").read_text().strip()
    return GuestImage(
        kernel=path / "vmlinuz",
        initrd=path / "initramfs.gz",
        cmdline=CMDLINE,
        kernel_version=kver,
    )


def _compatible_cached(root: Path, init_sh: bytes) -> GuestImage | None:
    """Newest complete build made from this init.sh and recipe (any kernel)."""
    want = hashlib.sha256(init_sh).hexdigest()
    best: tuple[float, Path] | None = None
    if not root.is_dir():
        return None
    for path in root.iterdir():
        if path.name.startswith(".") or not _complete(path):
            continue
        try:
            meta = json.loads((path / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        if meta.get("init_sha256") != want or meta.get("recipe_version") != RECIPE_VERSION:
            continue
        mtime = (path / "meta.json").stat().st_mtime
        if best is None or mtime > best[0]:
            best = (mtime, path)
    return _image(best[1]) if best else None


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    with open(root / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_stale_work(root: Path) -> None:
    """Leftovers of interrupted builds (only called with the lock held)."""
    for path in root.glob(".build-*"):
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".download-*"):
        shutil.rmtree(path, ignore_errors=True)


def build(*, force: bool = False) -> GuestImage:
    """Return the cached guest image, building it first if needed.

    Raises GuestBuildError with a readable message if that is impossible.
    """
    try:
        init_sh = INIT_SH.read_bytes()
    except OSError as exc:
        raise GuestBuildError(f"cannot read {INIT_SH}: {exc}") from exc
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise GuestBuildError(f"cannot create the guest cache dir {root}: {exc}") from exc

    updated = False
    is_root = os.geteuid() == 0
    while True:
        try:
            res = resolve_cached(root)
            key = res.key(init_sh)
            if not force and _complete(root / key):
                return _image(root / key)
            with _locked(root):
                if force or not _complete(root / key):
                    _remove_stale_work(root)
                    log.info("building tiny guest %s (%s)", key, res.kernel_package)
                    _build(root, res, init_sh, key)
                    force = False
            return _image(root / key)
        except _AptError as exc:
            err: GuestBuildError = exc
            if is_root and not updated:
                updated = True
                try:
                    _apt_update()
                    continue
                except GuestBuildError as upd:
                    err = upd
            fallback = _compatible_cached(root, init_sh)
            if fallback is not None:
                log.warning("apt failed (%s); using cached guest %s", err, fallback.kernel.parent)
                return fallback
            hint = "" if is_root else " Run `sudo apt-get update` and try again."
            raise GuestBuildError(
                f"cannot build the tiny test guest: {err}\n(apt lists missing or outdated?){hint}"
            ) from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.guest.build", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.monotonic()
    try:
        image = build(force=args.force)
    except GuestBuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - start
    info = {
        "kernel": str(image.kernel),
        "initrd": str(image.initrd),
        "cmdline": image.cmdline,
        "kernel_version": image.kernel_version,
        "seconds": round(elapsed, 3),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
