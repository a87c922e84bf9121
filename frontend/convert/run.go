package convert

import (
	"os"
	"strings"
	"sync"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/pkg/errors"
)

// convertRun adds a RUN step to the dependency stage. It sees the stage's
// files (base and DEPS), ENV, and the ARGs in scope as environment.
func (c *converter) convertRun(run *instructions.RunCommand) error {
	mountFlags, err := RunMounts(run, c.expand)
	if err != nil {
		return err
	}
	args := run.CmdLine
	if run.PrependShell {
		args = []string{"/bin/sh", "-c", strings.Join(run.CmdLine, " ")}
	}
	c.step++
	mounts, seeds, err := c.runMounts(run, mountFlags)
	if err != nil {
		return err
	}
	// The step runs args, or, when it fills caches its release carried,
	// args wrapped in the fill; its history records args.
	runArgs, carryOpts := c.withCarried(args, seeds)
	opts := []llb.RunOption{
		llb.Args(runArgs),
		llb.WithCustomName(c.stepName(run.String())),
		c.location(run),
	}
	for _, kv := range c.scope.BuildEnv() {
		k, v, _ := strings.Cut(kv, "=")
		opts = append(opts, llb.AddEnv(k, v))
	}
	opts = append(append(opts, mounts...), carryOpts...)
	switch instructions.GetNetwork(run) {
	case instructions.NetworkNone:
		opts = append(opts, llb.Network(llb.NetModeNone))
	case instructions.NetworkHost:
		opts = append(opts, llb.Network(llb.NetModeHost))
	case instructions.NetworkDefault:
		// The build's own network (`docker buildx build --network=host`,
		// force-network-mode), as the Dockerfile frontend sets it on every
		// step; the flag reads "default" when RUN does not set it.
		if c.opt.NetworkMode != llb.NetModeSandbox {
			opts = append(opts, llb.Network(c.opt.NetworkMode))
		}
	}
	c.deps.add("RUN", run.String())
	c.state = c.state.Run(opts...).Root()
	c.addHistory("RUN "+strings.Join(args, " "), true)
	return nil
}

// expandMu guards the mounts a parsed RUN holds: RunCommand.Expand parses
// its --mount flags into the instruction itself, which the conversions of
// every platform of a build (concurrent), the checks and the outline share.
var expandMu sync.Mutex

// RunMounts parses a RUN's --mount flags with expand, as the Dockerfile
// frontend does, and returns copies of them: a mount whose target or id
// names $TARGETARCH must not change under another platform's conversion.
// Before it, the instruction holds no parsed mount (BuildKit parses them
// when they are expanded).
func RunMounts(run *instructions.RunCommand, expand instructions.SingleWordExpander) ([]*instructions.Mount, error) {
	expandMu.Lock()
	defer expandMu.Unlock()
	if err := run.Expand(expand); err != nil {
		return nil, err
	}
	var out []*instructions.Mount
	for _, m := range instructions.GetMounts(run) {
		cp := *m
		out = append(out, &cp)
	}
	return out, nil
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if strings.HasPrefix(e, key+"=") {
			return true
		}
	}
	return false
}

// runMounts converts RUN --mount flags. Bind mounts are refused: a
// dependency step must see only its DEPS files, or its hash would lie.
// The caches the step fills from what its release carried (CARRY) are
// returned by target.
func (c *converter) runMounts(run *instructions.RunCommand, flags []*instructions.Mount) ([]llb.RunOption, map[string]llb.State, error) {
	var opts []llb.RunOption
	var seeds map[string]llb.State
	for i, m := range flags {
		switch m.Type {
		case instructions.MountTypeCache:
			if m.From != "" || m.Source != "" {
				return nil, nil, errors.Errorf("RUN --mount=type=cache,from=%s,source=%s: a Patchfile's cache mounts start empty, or from the cache the release carried (CARRY %s in a build stage); leave out from= and source=", m.From, m.Source, m.Target)
			}
			cm := c.cacheMount(m)
			seed, err := c.carryMount(cm, run)
			if err != nil {
				return nil, nil, err
			}
			if seed != nil {
				if seeds == nil {
					seeds = map[string]llb.State{}
				}
				seeds[m.Target] = *seed
			}
			opts = append(opts, cm.at(m.Target))
		case instructions.MountTypeTmpfs:
			opts = append(opts, llb.AddMount(m.Target, llb.Scratch(), llb.Tmpfs(llb.TmpfsSize(m.SizeLimit))))
		case instructions.MountTypeSecret:
			mount, err := ResolveMount(m, i)
			if err != nil {
				return nil, nil, err
			}
			secretOpts := []llb.SecretOption{llb.SecretID(mount.ID)}
			if !m.Required {
				secretOpts = append(secretOpts, llb.SecretOptional)
			}
			if m.Env != nil {
				var dest *string
				if mount.Target != "" {
					dest = &mount.Target
				}
				opts = append(opts, llb.AddSecretWithDest(mount.ID, dest, append(secretOpts, llb.SecretAsEnvName(*m.Env))...))
				continue
			}
			secretOpts = append(secretOpts, llb.SecretFileOpt(int(valueOr(m.UID, 0)), int(valueOr(m.GID, 0)), int(valueOr(m.Mode, 0o400))))
			opts = append(opts, llb.AddSecret(mount.Target, secretOpts...))
		case instructions.MountTypeSSH:
			mount, err := ResolveMount(m, i)
			if err != nil {
				return nil, nil, err
			}
			sshOpts := []llb.SSHOption{llb.SSHID(mount.ID), llb.SSHSocketOpt(mount.Target, int(valueOr(m.UID, 0)), int(valueOr(m.GID, 0)), int(valueOr(m.Mode, 0o600)))}
			if !m.Required {
				sshOpts = append(sshOpts, llb.SSHOptional)
			}
			opts = append(opts, llb.AddSSHSocket(sshOpts...))
		default:
			if c.stage != &c.pf.Stage {
				return nil, nil, errors.Errorf("RUN --mount=type=%s is not supported in a Patchfile: a build stage's steps see its DEPS files and, after APP, its sources: bring what a step needs with DEPS or APP; use type=cache, secret, ssh or tmpfs", m.Type)
			}
			return nil, nil, errors.Errorf("RUN --mount=type=%s is not supported in a Patchfile: a dependency step sees only its DEPS files, so list the files it needs with DEPS; use type=cache, secret, ssh or tmpfs", m.Type)
		}
	}
	return opts, seeds, nil
}

// cacheMount is one RUN --mount=type=cache: the cache it mounts and how.
// Every step that mounts the same cacheMount sees the same directory.
type cacheMount struct {
	target string
	// id is the cache's id, namespaced (BUILDKIT_CACHE_MOUNT_NS), and
	// sharing how steps share it.
	id      string
	sharing llb.CacheMountSharingMode
	// src is what the cache starts from: nothing, or a directory with the
	// mount's owner and mode (which BuildKit also keys the cache by).
	src  llb.State
	opts []llb.MountOption
}

// cacheMount converts a cache mount, as the Dockerfile frontend does
// (dockerfile2llb/convert_runmount.go).
func (c *converter) cacheMount(m *instructions.Mount) cacheMount {
	resolved, _ := ResolveMount(m, 0) // a cache mount always resolves
	id := resolved.ID
	if c.opt.CacheIDNamespace != "" {
		id = c.opt.CacheIDNamespace + "/" + id
	}
	sharing := llb.CacheMountShared
	switch m.CacheSharing {
	case instructions.MountSharingPrivate:
		sharing = llb.CacheMountPrivate
	case instructions.MountSharingLocked:
		sharing = llb.CacheMountLocked
	}
	cm := cacheMount{target: m.Target, id: id, sharing: sharing, src: llb.Scratch(), opts: []llb.MountOption{llb.AsPersistentCacheDir(id, sharing)}}
	if m.ReadOnly {
		cm.opts = append(cm.opts, llb.Readonly)
	}
	if m.UID != nil || m.GID != nil || m.Mode != nil {
		uid, gid, mode := valueOr(m.UID, 0), valueOr(m.GID, 0), valueOr(m.Mode, 0o755)
		cm.src = cm.src.File(llb.Mkdir("/cache", os.FileMode(mode), llb.WithUIDGID(int(uid), int(gid))), llb.WithCustomName("[internal] cache mount permissions"))
		cm.opts = append(cm.opts, llb.SourcePath("/cache"))
	}
	return cm
}

// at mounts the cache at dest.
func (cm cacheMount) at(dest string) llb.RunOption {
	return llb.AddMount(dest, cm.src, cm.opts...)
}

func valueOr(p *uint64, def uint64) uint64 {
	if p == nil {
		return def
	}
	return *p
}
