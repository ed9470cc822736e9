// Command render renders a Helm chart the way `helm template` does, for tests on machines
// without the helm binary: Go's text/template with sprig, Helm's own built-ins (include, tpl,
// toYaml, fromYaml, toJson, fromJson, required, fail, lookup, .Files), values coalesced over the
// chart's values.yaml and validated against values.schema.json with the JSON Schema library
// Helm 3 uses, missingkey=zero, and "<no value>" erased as Helm erases it.
//
// Usage: render -chart DIR [-f values.yaml]... [-name RELEASE] [-namespace NS] [-kube-version 1.30.0]
// Prints JSON: {"manifests":[{"template":"weir/templates/x.yaml","content":"..."}],"notes":"..."}.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/xeipuuv/gojsonschema"
	"gopkg.in/yaml.v3"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(s string) error { *v = append(*v, s); return nil }

type apiVersions []string

// Has reports whether the cluster serves an API group/version (or group/version/Kind).
func (a apiVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

// files is .Files: the chart's non-template files, for .Files.Get and .Files.Glob.
type files map[string][]byte

func (f files) Get(name string) string { return string(f[name]) }

func (f files) Glob(pattern string) files {
	out := files{}
	for k, v := range f {
		if ok, _ := path.Match(pattern, k); ok {
			out[k] = v
		}
	}
	return out
}

// AsConfig renders the files as ConfigMap data (file base name -> content).
func (f files) AsConfig() string {
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = string(v)
	}
	return toYAML(m)
}

func loadFiles(chartDir string) (files, error) {
	out := files{}
	err := filepath.Walk(chartDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(rel, "templates/") || rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" {
			return nil
		}
		b, err := os.ReadFile(p)
		out[rel] = b
		return err
	})
	return out, err
}

type manifest struct {
	Template string `json:"template"`
	Content  string `json:"content"`
}

func main() {
	chartDir := flag.String("chart", "", "chart directory")
	name := flag.String("name", "weir", "release name")
	namespace := flag.String("namespace", "kube-system", "release namespace")
	kubeVersion := flag.String("kube-version", "1.30.0", "Kubernetes version for .Capabilities")
	var files valueFiles
	flag.Var(&files, "f", "values file (repeatable, later wins)")
	flag.Parse()
	if err := run(*chartDir, *name, *namespace, *kubeVersion, files); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}

func readYAML(file string) (map[string]interface{}, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return out, nil
}

// coalesce merges src over dst as Helm does: maps merge deeply, anything else replaces,
// and a null in src deletes the key.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		sv, sok := v.(map[string]interface{})
		dv, dok := dst[k].(map[string]interface{})
		if sok && dok {
			dst[k] = coalesce(dv, sv)
		} else {
			dst[k] = v
		}
	}
	return dst
}

func validate(chartDir string, values map[string]interface{}) error {
	schemaFile := filepath.Join(chartDir, "values.schema.json")
	schema, err := os.ReadFile(schemaFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	doc, err := json.Marshal(values)
	if err != nil {
		return err
	}
	res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewBytesLoader(doc))
	if err != nil {
		return fmt.Errorf("values.schema.json: %w", err)
	}
	if !res.Valid() {
		var msgs []string
		for _, e := range res.Errors() {
			msgs = append(msgs, "- "+e.String())
		}
		return fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s", strings.Join(msgs, "\n"))
	}
	return nil
}

func toYAML(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func run(chartDir, name, namespace, kubeVersion string, files []string) error {
	if chartDir == "" {
		return errors.New("-chart is required")
	}
	chart, err := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	values, err := readYAML(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return err
	}
	for _, f := range files {
		v, err := readYAML(f)
		if err != nil {
			return err
		}
		values = coalesce(values, v)
	}
	if err := validate(chartDir, values); err != nil {
		return err
	}
	chartName, _ := chart["name"].(string)
	// .Chart exposes Chart.yaml with Helm's capitalised field names.
	chartData := map[string]interface{}{}
	for k, v := range chart {
		chartData[strings.ToUpper(k[:1])+k[1:]] = v
	}
	chartFiles, err := loadFiles(chartDir)
	if err != nil {
		return err
	}
	kv := strings.SplitN(kubeVersion, ".", 3)
	data := map[string]interface{}{
		"Values": values,
		"Files":  chartFiles,
		"Chart":  chartData,
		"Release": map[string]interface{}{
			"Name": name, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": "v" + kubeVersion, "GitVersion": "v" + kubeVersion, "Major": kv[0], "Minor": kv[1]},
			"APIVersions": apiVersions{"v1", "apps/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1", "events.k8s.io/v1"},
		},
	}

	tpl := template.New("gotpl").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	includeDepth := 0
	funcs["include"] = func(n string, d interface{}) (string, error) {
		includeDepth++
		defer func() { includeDepth-- }()
		if includeDepth > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", n)
		}
		var buf bytes.Buffer
		if err := tpl.ExecuteTemplate(&buf, n, d); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	funcs["tpl"] = func(text string, d interface{}) (string, error) {
		t, err := tpl.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, d); err != nil {
			return "", err
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, errors.New(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, errors.New(msg)
		}
		return v, nil
	}
	funcs["toYaml"] = toYAML
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	tpl.Funcs(funcs)

	tdir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(tdir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(tdir, e.Name()))
		if err != nil {
			return err
		}
		n := path.Join(chartName, "templates", e.Name())
		if _, err := tpl.New(n).Parse(string(b)); err != nil {
			return err
		}
		names = append(names, n)
	}
	sort.Strings(names)
	out := struct {
		Manifests []manifest `json:"manifests"`
		Notes     string     `json:"notes"`
	}{Manifests: []manifest{}}
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		d := map[string]interface{}{}
		for k, v := range data {
			d[k] = v
		}
		d["Template"] = map[string]interface{}{"Name": n, "BasePath": path.Join(chartName, "templates")}
		var buf bytes.Buffer
		if err := tpl.ExecuteTemplate(&buf, n, d); err != nil {
			return err
		}
		content := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			out.Notes = content
			continue
		}
		if strings.TrimSpace(content) == "" {
			continue
		}
		out.Manifests = append(out.Manifests, manifest{Template: n, Content: content})
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
