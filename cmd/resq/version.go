package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is resq's release; VCS details come from the build.
const version = "0.1.0-dev"

// versionInfo is what 'resq version --json' prints.
type versionInfo struct {
	Version      string       `json:"version"`
	Commit       string       `json:"commit,omitempty"`
	CommitTime   string       `json:"commit_time,omitempty"`
	Modified     bool         `json:"modified,omitempty"`
	Go           string       `json:"go"`
	Platform     string       `json:"platform"`
	Module       string       `json:"module,omitempty"`
	Dependencies []dependency `json:"dependencies"`
}

type dependency struct {
	Path    string `json:"path"`
	Version string `json:"version"`
	Replace string `json:"replace,omitempty"` // path@version it was replaced by
}

func buildVersion() versionInfo {
	v := versionInfo{Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Dependencies: []dependency{}}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Module = bi.Main.Path
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	for _, d := range bi.Deps {
		dep := dependency{Path: d.Path, Version: d.Version}
		if d.Replace != nil {
			dep.Replace = d.Replace.Path
			if d.Replace.Version != "" {
				dep.Replace += "@" + d.Replace.Version
			}
		}
		v.Dependencies = append(v.Dependencies, dep)
	}
	return v
}

func (c *cli) cmdVersion(_ context.Context, args []string) error {
	fs := c.newFlags("version", "Print resq's version, the Go version it was built with, and every dependency module.").args(0, 0, "")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	v := buildVersion()
	if c.g.json {
		return c.printJSON(v)
	}
	line := "resq " + v.Version
	if v.Commit != "" {
		commit := v.Commit
		if len(commit) > 12 {
			commit = commit[:12]
		}
		line += " (commit " + commit
		if v.CommitTime != "" {
			line += ", " + v.CommitTime
		}
		if v.Modified {
			line += ", modified"
		}
		line += ")"
	}
	fmt.Fprintln(c.stdout, line)
	fmt.Fprintf(c.stdout, "go %s %s\n", v.Go, v.Platform)
	if len(v.Dependencies) == 0 {
		fmt.Fprintln(c.stdout, "dependencies: (no build information in this binary)")
		return nil
	}
	fmt.Fprintln(c.stdout, "dependencies:")
	for _, d := range v.Dependencies {
		s := d.Path + "@" + d.Version
		if d.Replace != "" {
			s += " => " + d.Replace
		}
		fmt.Fprintf(c.stdout, "  %s\n", s)
	}
	return nil
}
