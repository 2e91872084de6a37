/* Checks, once the page has loaded, that every chart drew marks with a size; records the counts. */
(function () {
  var figures = document.querySelectorAll('figure[data-chart]'), ok = 0;
  figures.forEach(function (figure) {
    var marks = figure.querySelectorAll('svg .mark'), drawn = 0;
    marks.forEach(function (mark) {
      var box = mark.getBBox();
      if (box.width > 0 || box.height > 0) drawn++;
    });
    figure.setAttribute('data-marks', marks.length);
    figure.setAttribute('data-rendered', drawn);
    if (marks.length > 0 && drawn === marks.length) ok++;
    else figure.setAttribute('data-render-error', drawn + ' of ' + marks.length + ' marks drawn');
  });
  document.body.setAttribute('data-charts', figures.length);
  document.body.setAttribute('data-charts-rendered', ok);
})();
