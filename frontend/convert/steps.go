package convert

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	"github.com/patchfile/patchfile/frontend/decide"
	"github.com/patchfile/patchfile/frontend/patchfile"
	pllb "github.com/patchfile/patchfile/llb"
	"github.com/pkg/errors"
)

// convertStep applies one instruction after FROM. inDeps is true before APP,
// where instructions build the dependency stage and count in its hash;
// after APP they change only the image config.
func (c *converter) convertStep(ctx context.Context, inst patchfile.Instruction, inDeps bool) error {
	var hash *depsHasher
	if inDeps {
		hash = c.deps
	}
	switch inst := inst.(type) {
	case *instructions.ArgCommand:
		return c.declareArgs(inst, hash)
	case *instructions.EnvCommand:
		return c.convertEnv(inst, hash)
	case *instructions.WorkdirCommand:
		return c.convertWorkdir(inst, inDeps)
	case *instructions.UserCommand:
		user, err := c.expand(inst.User)
		if err != nil {
			return err
		}
		c.image.Config.User = user
		c.state = c.state.User(user)
		hash.add("USER", user)
		c.addHistory("USER "+user, false)
	case *patchfile.DepsInstruction:
		return c.convertDeps(ctx, inst)
	case *instructions.RunCommand:
		return c.convertRun(inst)
	default:
		return c.convertConfig(inst)
	}
	return nil
}

// convertEnv sets the variables of an ENV instruction. Every word of it
// expands with the variables as they were before it, as in a Dockerfile:
// `ENV C=env D=${C}-d` gives D the C from before (TestDockerfileParity).
func (c *converter) convertEnv(inst *instructions.EnvCommand, hash *depsHasher) error {
	type pair struct{ key, value string }
	var pairs []pair
	for _, kv := range inst.Env {
		value, err := c.expand(kv.Value)
		if err != nil {
			return err
		}
		key, err := c.expand(kv.Key)
		if err != nil {
			return err
		}
		pairs = append(pairs, pair{key, value})
	}
	for _, p := range pairs {
		key, value := p.key, p.value
		c.scope.SetEnv(key, value)
		c.image.Config.Env = c.scope.Env()
		c.state = c.state.AddEnv(key, value)
		hash.add("ENV", key+"="+value)
	}
	c.addHistory(inst.String(), false)
	return nil
}

// setEnv sets key=value in a KEY=VALUE list, keeping its place if present.
func setEnv(env []string, key, value string) []string {
	env = slices.Clone(env)
	for i, e := range env {
		if strings.HasPrefix(e, key+"=") {
			env[i] = key + "=" + value
			return env
		}
	}
	return append(env, key+"="+value)
}

// convertWorkdir sets the working directory. In the dependency stage it
// also creates it (as a Dockerfile does); after APP it is config only.
func (c *converter) convertWorkdir(inst *instructions.WorkdirCommand, inDeps bool) error {
	dir, err := c.expand(inst.Path)
	if err != nil {
		return err
	}
	if !path.IsAbs(dir) {
		dir = path.Join("/", c.image.Config.WorkingDir, dir)
	}
	c.image.Config.WorkingDir = dir
	c.state = c.state.Dir(dir)
	if !inDeps {
		c.addHistory("WORKDIR "+dir, false)
		return nil
	}
	c.deps.add("WORKDIR", dir)
	mkdirOpts := []llb.MkdirOption{llb.WithParents(true), llb.WithCreatedTime(pllb.PinnedTime)}
	if user := c.image.Config.User; user != "" {
		mkdirOpts = append(mkdirOpts, llb.WithUser(user))
	}
	c.step++
	c.state = c.state.File(llb.Mkdir(dir, 0o755, mkdirOpts...),
		llb.WithCustomName(c.stepName("WORKDIR "+dir)), c.location(inst))
	c.addHistory("WORKDIR "+dir, true)
	return nil
}

func (c *converter) stepName(what string) string {
	return c.opt.VertexName(c.platform, fmt.Sprintf("%s %d/%d", c.stepTag, c.step, c.nsteps), what)
}

// convertConfig applies the instructions that only change the image config.
func (c *converter) convertConfig(inst patchfile.Instruction) error {
	cfg := &c.image.Config
	switch inst := inst.(type) {
	case *instructions.ExposeCommand:
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range inst.Ports {
			p, err := c.expand(p)
			if err != nil {
				return err
			}
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range inst.Labels {
			k, err := c.expand(kv.Key)
			if err != nil {
				return err
			}
			v, err := c.expand(kv.Value)
			if err != nil {
				return err
			}
			if strings.HasPrefix(k, decide.LabelPrefix) {
				return errors.Errorf("LABEL %s: labels starting with %q are written by Patchfile itself, pick another name", k, decide.LabelPrefix)
			}
			cfg.Labels[k] = v
		}
	case *instructions.CmdCommand:
		cfg.Cmd = c.commandLine(inst.ShellDependantCmdLine)
		c.cmdSet = true
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = c.commandLine(inst.ShellDependantCmdLine)
		// As in a Dockerfile: a new ENTRYPOINT drops the CMD inherited from
		// the base image, but keeps one this Patchfile set.
		if !c.cmdSet {
			cfg.Cmd = nil
		}
	case *instructions.StopSignalCommand:
		sig, err := c.expand(inst.Signal)
		if err != nil {
			return err
		}
		cfg.StopSignal = sig
	case *instructions.HealthCheckCommand:
		hc := *inst.Health
		cfg.Healthcheck = (*dockerspec.HealthcheckConfig)(&hc)
	default:
		return errors.Errorf("%s is not supported here", strings.ToUpper(inst.Name()))
	}
	c.addHistory(strings.TrimSpace(fmt.Sprint(inst)), false)
	return nil
}

// commandLine turns CMD/ENTRYPOINT into exec form.
func (c *converter) commandLine(cl instructions.ShellDependantCmdLine) []string {
	if cl.PrependShell {
		return []string{"/bin/sh", "-c", strings.Join(cl.CmdLine, " ")}
	}
	return slices.Clone(cl.CmdLine)
}
