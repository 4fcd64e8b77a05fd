package migrations

import (
	"context"
	"io/fs"
	"strings"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// LegacyUp installs what main installed before the sync schema existed:
// River's tables and migrations 001-004 in public, goose's version table
// there too, exactly as that version's Up ran them.
func LegacyUp(ctx context.Context, url string) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return err
	}
	legacy := fstest.MapFS{}
	err = fs.WalkDir(sqlFiles, "sql", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := strings.TrimPrefix(path, "sql/")
		if name >= "005" {
			return nil
		}
		b, err := sqlFiles.ReadFile(path)
		legacy[name] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		return err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, db, legacy, goose.WithTableName(VersionTable))
	if err != nil {
		return err
	}
	_, err = provider.Up(ctx)
	return err
}
